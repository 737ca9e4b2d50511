import { describe, expect, it } from "vitest";
import { ShellEngine } from "../../src/engines/builtin/shell-engine.js";
import { createDefaultRegistry } from "../../src/engines/builtin-engines.js";
import type { Engine } from "../../src/engines/engine-port.js";
import {
  DuplicateEngineError,
  EngineRegistry,
  EngineSpecificationError,
  UnknownEngineError,
} from "../../src/engines/engine-registry.js";

describe("engine registry", () => {
  it("holds the built-in engines and finds them by id", () => {
    const registry = createDefaultRegistry();
    expect(registry.ids()).toEqual(expect.arrayContaining(["replay", "shell"]));
    expect(registry.get("shell").kind).toBe("builtin");
    expect(registry.has("nope")).toBe(false);
  });

  it("refuses a duplicate id", () => {
    expect(() => createDefaultRegistry().register(new ShellEngine())).toThrow(DuplicateEngineError);
  });

  it("names the known ids when asked for an unknown one", () => {
    const registry = createDefaultRegistry();
    expect(() => registry.get("gpt-magic")).toThrow(UnknownEngineError);
    expect(() => registry.get("gpt-magic")).toThrow(/unknown engine "gpt-magic" \(known: .*replay.*shell/);
  });

  it("refuses an engine written against another version of the port", () => {
    const shell = new ShellEngine();
    const older = Object.assign(Object.create(shell) as Engine, {
      specificationVersion: "v0",
      id: "old-shell",
    });
    expect(() => new EngineRegistry().register(older)).toThrow(EngineSpecificationError);
    expect(() => new EngineRegistry().register(older)).toThrow(
      'engine "old-shell" implements engine specification "v0"; this TasksGodzilla knows v1',
    );
  });
});
