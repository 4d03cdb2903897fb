// The real Node clients of SPEC §9 against a live registry: node-vault, cloud-config-client and the
// OpenFeature server SDK with its OFREP provider. Reads {address, tokens} as JSON on stdin and prints one
// JSON object of outcomes (a value, or {"error": {status, message}}) for tests/test_protocol_node_clients.py.
import cloudConfig from "cloud-config-client";
import nodeVault from "node-vault";
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";

const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => done(text));
}));
const base = `http://${input.address}`;
const outcomes = {};

async function outcome(name, call) {
  try {
    outcomes[name] = await call();
  } catch (error) {
    outcomes[name] = { error: { status: error.response?.statusCode ?? error.status ?? null, message: String(error.message) } };
  }
}

const vault = nodeVault({ endpoint: base, token: input.tokens.vault });
const vaultGetLists = nodeVault({ endpoint: base, token: input.tokens.vault, noCustomHTTPVerbs: true });
const reader = nodeVault({ endpoint: base, token: input.tokens.reader });
await outcome("vault.read", () => vault.read("layers/data/service/chat").then((answer) => answer.data));
await outcome("vault.write_cas", () =>
  vault.write("layers/data/service/chat", { data: { "chat.max": 5 }, options: { cas: 1 } }).then((a) => a.data));
await outcome("vault.write_stale_cas", () =>
  vault.write("layers/data/service/chat", { data: { "chat.max": 6 }, options: { cas: 1 } }));
await outcome("vault.read_version_1", () => vault.read("layers/data/service/chat?version=1").then((a) => a.data.data));
await outcome("vault.list", () => vault.list("layers/metadata/environment").then((a) => a.data.keys));
await outcome("vault.list_by_get", () => vaultGetLists.list("layers/metadata/environment").then((a) => a.data.keys));
await outcome("vault.config", () => vault.read("config/data/production/chat").then((a) => a.data.data));
await outcome("vault.secret_without_scope", () => reader.read("layers/data/global"));
await outcome("vault.lookup_self", () => vault.tokenLookupSelf().then((a) => a.data.policies));
await outcome("vault.health", () => vault.health());
await outcome("vault.bad_token", () => nodeVault({ endpoint: base, token: "crt_nope" }).read("layers/data/global"));

await outcome("spring.load", () =>
  cloudConfig
    .load({ endpoint: `${base}/spring`, name: "chat", profiles: "production", auth: { user: "chat", pass: input.tokens.vault } })
    .then((config) => ({ max: config.get("chat.max"), level: config.get("log.level"), password: config.get("db.password") })));
await outcome("spring.label", () =>
  cloudConfig
    .load({ endpoint: `${base}/spring`, name: "chat", profiles: "production", label: String(input.revision), headers: { "X-Config-Token": input.tokens.vault } })
    .then((config) => config.get("chat.max")));
await outcome("spring.bad_token", () =>
  cloudConfig.load({ endpoint: `${base}/spring`, name: "chat", profiles: "production", auth: { user: "x", pass: "crt_nope" } }));

await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl: base, headers: [["Authorization", `Bearer ${input.tokens.flags}`]] }));
const flags = OpenFeature.getClient();
await outcome("ofrep.targeted", () =>
  flags.getBooleanDetails("feature.dark_mode", false, { targetingKey: "alice" }).then((d) => ({ value: d.value, reason: d.reason, variant: d.variant })));
await outcome("ofrep.static", () =>
  flags.getBooleanDetails("feature.dark_mode", true, {}).then((d) => ({ value: d.value, reason: d.reason })));
await outcome("ofrep.secret", () =>
  flags.getStringDetails("db.password", "fallback", {}).then((d) => ({ value: d.value, errorCode: d.errorCode })));
await outcome("ofrep.missing", () =>
  flags.getStringDetails("nope", "fallback", {}).then((d) => ({ value: d.value, errorCode: d.errorCode })));
await OpenFeature.close();

process.stdout.write(JSON.stringify(outcomes));
