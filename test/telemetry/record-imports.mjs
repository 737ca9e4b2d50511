// Registers record-imports-hooks.mjs: every module URL the process resolves is appended to $TGZ_IMPORT_LOG.
import { register } from "node:module";

register("./record-imports-hooks.mjs", import.meta.url);
