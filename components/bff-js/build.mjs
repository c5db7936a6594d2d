// Builds one JavaScript component with componentize-js, the engine behind `jco componentize`.
//
//   node build.mjs <source.js> <wit dir> <world> <out.wasm>
//
// Called by scripts/build-js-components.sh. It calls componentize-js's API rather than the
// `jco componentize` command because the pinned jco reads the WIT through the WASI shim
// without giving it any preopened directory, so it cannot read any path; here the shim is
// given the file system root before componentize-js reads the WIT and the source.

import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { _setPreopens } from "@bytecodealliance/preview2-shim/filesystem";
import { componentize } from "@bytecodealliance/componentize-js";

const [source, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node build.mjs <source.js> <wit dir> <world> <out.wasm>");
  process.exit(2);
}
_setPreopens({ "/": "/" });
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve(witPath),
  worldName,
});
await writeFile(out, component);
