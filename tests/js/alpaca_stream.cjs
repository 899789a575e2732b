// Streams from `dev feed` with Alpaca's JavaScript SDK, unchanged: msgpack, its own subscribe
// messages, its own decoding. Prints one JSON line: what each handler received.
//
// Environment: ALPACA_STREAM_URL, ALPACA_API_KEY, ALPACA_API_SECRET, SYMBOL, WANT (messages
// of each kind to collect before disconnecting).
"use strict";

const { Alpaca } = require("@alpacahq/alpaca-trade-api");

const want = Number(process.env.WANT || "5");
const symbol = process.env.SYMBOL || "BTC/USD";
const got = { trades: [], quotes: [], orderbooks: [], bars: [], errors: [], subscriptions: [] };

const alpaca = new Alpaca({ keyId: process.env.ALPACA_API_KEY, secret: process.env.ALPACA_API_SECRET });
const stream = alpaca.marketData.cryptoStream({ url: process.env.ALPACA_STREAM_URL, reconnect: false });

function replacer(_key, value) {
  return typeof value === "bigint" ? value.toString() : value;
}

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(got, replacer) + "\n");
  stream.disconnect();
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}

function check() {
  const kinds = ["trades", "quotes", "orderbooks", "bars"];
  if (kinds.every((k) => got[k].length >= want)) finish(0);
}

function keep(kind) {
  return (message) => {
    if (got[kind].length < want) got[kind].push(message);
    check();
  };
}

stream.onTrade(keep("trades"));
stream.onQuote(keep("quotes"));
stream.onOrderbook(keep("orderbooks"));
stream.onBar(keep("bars"));
stream.onError((message) => got.errors.push(String(message)));
stream.on("subscription", (subs) => got.subscriptions.push(subs));
stream.onConnect(() => {
  stream.subscribeForTrades([symbol]);
  stream.subscribeForQuotes([symbol]);
  stream.subscribeForOrderbooks([symbol]);
  stream.subscribeForBars([symbol]);
});
stream.onDisconnect(() => finish(finished ? 0 : 3));
stream.connect();
