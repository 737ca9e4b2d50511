/**
 * The engines' process handling that other folders use (its subfolder `process/` is internal):
 * running a command in its own process group with a timeout (QA check commands), finding a binary
 * on PATH (gh, glab), and identifying and killing an engine process a dead runner left behind.
 */
export { identify, killOrphan, type ProcessIdentity } from "./process/process-identity.js";
export { findBinary, runProcess } from "./process/run-process.js";
