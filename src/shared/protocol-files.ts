/** The run's own records in its protocol folder, named once for whoever writes or guards them. */

/** The frozen ProtocolSpec of the run. */
export const FROZEN_SPEC_FILE = "protocol-spec.json";

/** Transcripts of every engine call (git-ignored: they stay out of the branch). */
export const TRANSCRIPTS_DIR = "logs";
