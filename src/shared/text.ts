/** Text helpers shared by error messages and prompts. */

/** The end of a text, marked as cut, so long output stays readable in messages and prompts. */
export function tail(text: string, max = 2000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

/** The start of a text, marked as cut: where a line begins says what it is (an event's type). */
export function head(text: string, max = 500): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
