/** A validation error: where in the spec (a JSON pointer) and why, in plain words. */
export interface SpecError {
  /** RFC 6901 JSON pointer into the spec ("" is the whole document). */
  pointer: string;
  message: string;
}
