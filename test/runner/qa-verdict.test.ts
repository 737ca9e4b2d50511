import { describe, expect, it } from "vitest";
import { parseVerdict } from "../../src/runner/qa-verdict.js";

describe("QA verdict parsing", () => {
  it("reads a bare JSON verdict", () => {
    expect(parseVerdict('{"verdict":"pass","summary":"ok","findings":[]}')).toEqual({
      verdict: "pass",
      summary: "ok",
      findings: [],
    });
  });

  it("extracts JSON from prose and code fences, case-insensitively", () => {
    const fenced =
      'Here is my review.\n```json\n{"verdict": "FAIL", "summary": "tests missing", "findings": [{"severity": "major", "message": "no tests"}]}\n```\nThanks';
    expect(parseVerdict(fenced)).toMatchObject({
      verdict: "fail",
      findings: [{ severity: "major", message: "no tests" }],
    });
    expect(parseVerdict('I think {"verdict":"pass"} is right')).toMatchObject({
      verdict: "pass",
      summary: "",
    });
  });

  it("handles braces inside strings", () => {
    expect(parseVerdict('{"verdict":"fail","summary":"a } in text { here"}')).toMatchObject({
      verdict: "fail",
      summary: "a } in text { here",
    });
  });

  it("returns null — never a pass — for anything else", () => {
    for (const text of [
      "",
      "VERDICT: PASS",
      "**Verdict:** PASS",
      '{"verdict":"maybe"}',
      "{broken",
      '{"result":"pass"}',
    ]) {
      expect(parseVerdict(text)).toBeNull();
    }
  });
});
