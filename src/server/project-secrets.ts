/**
 * Per-project secrets (`secrets` of POST /projects): kept by the store beside the project, never
 * returned (the API shows only which names are set) and never logged. `api_token` makes the
 * project's routes ask for `X-Project-Token`.
 */
export type { SecretsRepository as ProjectSecrets } from "../store/repositories.js";

/** The secret that guards a project's routes. */
export const PROJECT_TOKEN_SECRET = "api_token";
