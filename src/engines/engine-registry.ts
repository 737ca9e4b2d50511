/** The engines a process knows, by id. The runner looks engines up here and never branches on ids. */
import { TasksGodzillaError } from "../shared/errors.js";
import { ENGINE_SPECIFICATION_VERSION, type Engine } from "./engine-port.js";

export class DuplicateEngineError extends TasksGodzillaError {
  readonly code = "duplicate_engine";
  constructor(id: string) {
    super(`an engine with id "${id}" is already registered`);
  }
}

/** An engine written against another version of the port: its events or results could be misread. */
export class EngineSpecificationError extends TasksGodzillaError {
  readonly code = "engine_specification";
  constructor(id: string, version: unknown) {
    super(
      `engine "${id}" implements engine specification ${JSON.stringify(version)}; this TasksGodzilla knows ${ENGINE_SPECIFICATION_VERSION}`,
    );
  }
}

export class UnknownEngineError extends TasksGodzillaError {
  readonly code = "unknown_engine";
  constructor(id: string, known: string[]) {
    super(`unknown engine "${id}" (known: ${known.join(", ")})`);
  }
}

export class EngineRegistry {
  private readonly engines = new Map<string, Engine>();

  register(engine: Engine): void {
    // the type says so for engines compiled with this port; an engine built against another cannot be trusted
    if ((engine.specificationVersion as unknown) !== ENGINE_SPECIFICATION_VERSION)
      throw new EngineSpecificationError(engine.id, engine.specificationVersion);
    if (this.engines.has(engine.id)) throw new DuplicateEngineError(engine.id);
    this.engines.set(engine.id, engine);
  }

  get(id: string): Engine {
    const engine = this.engines.get(id);
    if (!engine) throw new UnknownEngineError(id, this.ids());
    return engine;
  }

  has(id: string): boolean {
    return this.engines.has(id);
  }

  list(): Engine[] {
    return [...this.engines.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  ids(): string[] {
    return this.list().map((e) => e.id);
  }
}
