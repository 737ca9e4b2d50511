/** Text helpers shared by error messages and prompts. */

/** The end of a text, marked as cut, so long output stays readable in messages and prompts. */
export function tail(text: string, max = 2000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}
