// A child process for the crash test: commits to an LmdbStore in a loop until
// it is killed. Commit i writes application a<i> and model m<i>:1 together, so
// a consistent store holds as many models as applications, at revision 2 × that.
// Prints "committed <i>" after each commit.
import { create } from "@bufbuild/protobuf";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ConfigChangeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { LmdbStore } from "../lmdb-store.js";

const dir = process.argv[2];
if (dir === undefined) throw new Error("usage: crash-writer.ts <dir>");
const store = LmdbStore.open(dir);
let revision = (await store.load()).revision;
for (let i = Number(revision / 2n) + 1; ; i++) {
  revision = await store.commit(revision, [
    create(ConfigChangeSchema, { change: { case: "applicationUpserted", value: { name: `a${i}`, inputType: InputType.INTS, description: "x".repeat(2000) } } }),
    create(ConfigChangeSchema, {
      change: {
        case: "modelUpserted",
        value: { name: `m${i}`, version: "1", inputType: InputType.INTS, runtime: { kind: { case: "command", value: { argv: ["true"] } } } },
      },
    }),
  ]);
  process.stdout.write(`committed ${i}\n`);
}
