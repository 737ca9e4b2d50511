/**
 * The dependency rules of src/ (see docs/architecture.md, "Layers"), checked by `npm run lint`:
 * no import cycle between files or between folders, no import up the layers, no import into
 * another folder's internals, and the database and Redis drivers only behind their ports.
 */

/** Bottom to top: a folder imports from its own layer (without a cycle) and the ones below. */
const LAYERS = [
  ["shared"],
  ["store"],
  ["spec", "cost", "telemetry", "notify"],
  ["config", "engines", "git", "queue"],
  ["runner", "codemachine", "planning", "pr"],
  ["services"],
  ["worker", "server", "cli"],
];

/** Files of the store that implement its port: nothing outside src/store/ imports them. */
const STORE_INTERNALS = [
  "kysely-store",
  "db-schema",
  "migrations",
  "row-mappers",
  "guarded-driver",
  "outage-watch",
  "job-rows",
  "secret-rows",
  "slot-rows",
  "stats-queries",
];

/**
 * Folder cycles to let through while they are being removed: only the cycle between the two is let
 * through (module-level violations to let through are in .dependency-cruiser-known-violations.json,
 * which `--ignore-known` reads). Delete an entry once its cycle is gone; none is known now.
 */
const KNOWN_FOLDER_CYCLES = [];
const known = KNOWN_FOLDER_CYCLES.flat();
const exempt = known.length > 0 ? `^src/(${known.join("|")})$` : undefined;

const folders = (names) => `^src/(${names.join("|")})/`;

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join("-")}`,
  comment: `${layer.join(", ")} may not import from a layer above it (${LAYERS.slice(i + 1)
    .flat()
    .join(", ")})`,
  severity: "error",
  from: { path: folders(layer) },
  to: { path: folders(LAYERS.slice(i + 1).flat()) },
}));

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "an import cycle between files",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "no-circular-folders",
      comment: "an import cycle between top-level folders of src/",
      severity: "error",
      scope: "folder",
      from: { path: "^src/[^/]+$", ...(exempt ? { pathNot: exempt } : {}) },
      to: { path: "^src/[^/]+$", circular: true },
    },
    ...(exempt
      ? [
          {
            name: "no-circular-folders",
            comment: "an import cycle between top-level folders of src/ (from a folder of a known cycle)",
            severity: "error",
            scope: "folder",
            from: { path: exempt },
            to: { path: "^src/[^/]+$", pathNot: exempt, circular: true },
          },
        ]
      : []),
    ...upward,
    {
      name: "no-deep-import",
      comment: "a folder's subfolders are its internals: only its own files import them",
      severity: "error",
      from: { path: "^src/([^/]+)/" },
      to: { path: "^src/[^/]+/[^/]+/", pathNot: "^src/$1/" },
    },
    {
      name: "store-internals",
      comment: "the store's implementation is behind its port (types.ts, repositories.ts, open-store.ts …)",
      severity: "error",
      from: { pathNot: "^src/store/" },
      to: { path: `^src/store/(${STORE_INTERNALS.join("|")})\\.ts$` },
    },
    {
      name: "database-drivers-in-store",
      comment: "only the store talks to the database: Kysely, pg and better-sqlite3 stay in src/store/",
      severity: "error",
      from: { pathNot: "^src/store/" },
      to: { path: "node_modules/(kysely|pg|pg-pool|better-sqlite3)/" },
    },
    {
      name: "redis-clients-in-queue",
      comment: "only the queue talks to Redis: BullMQ and ioredis stay in src/queue/",
      severity: "error",
      from: { pathNot: "^src/queue/" },
      to: { path: "node_modules/(bullmq|ioredis)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // type-only imports count: a cycle through a type is a cycle of the design
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
