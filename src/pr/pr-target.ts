/**
 * Where a pull/merge request goes: the provider and repository from the remote URL, or from the
 * environment (`TASKSGODZILLA_PR_PROVIDER`, `GITHUB_REPOSITORY` / `GITLAB_PROJECT`, as CI sets them),
 * and the API base (`GITHUB_API_URL`, `GITLAB_API_URL`) so self-hosted instances work.
 */
import { InvalidInputError } from "../shared/errors.js";

export type Provider = "github" | "gitlab";

export interface PrTarget {
  provider: Provider;
  /** `owner/repo` or a GitLab project path `group/sub/project`. */
  repository: string;
  /** The web host of the repository (`github.com`, `gitlab.example.com`), for `gh`/`glab --repo`. */
  host: string;
  apiUrl: string;
}

/** Host and path of a remote URL (https, ssh, or scp-like `git@host:path`). */
export function parseRemote(url: string): { host: string; path: string } | undefined {
  const scp = /^[\w.-]+@([\w.-]+):(.+?)(?:\.git)?\/?$/.exec(url);
  if (scp) return { host: scp[1]!, path: scp[2]! };
  try {
    const u = new URL(url);
    if (!u.hostname) return undefined;
    // an https remote's port is the web server's (a self-hosted instance may serve on one); an ssh one's is not
    const host = u.protocol.startsWith("http") ? u.host : u.hostname;
    return { host, path: u.pathname.replace(/^\/+/, "").replace(/\.git\/?$/, "") };
  } catch {
    return undefined;
  }
}

export function resolvePrTarget(remoteUrl: string, env: NodeJS.ProcessEnv): PrTarget {
  const remote = parseRemote(remoteUrl);
  const named = env.TASKSGODZILLA_PR_PROVIDER;
  const provider: Provider | undefined =
    named === "github" || named === "gitlab"
      ? named
      : remote?.host.includes("gitlab")
        ? "gitlab"
        : remote?.host.includes("github")
          ? "github"
          : undefined;
  if (!provider) {
    throw new InvalidInputError(
      `cannot tell whether ${remoteUrl} is GitHub or GitLab; set TASKSGODZILLA_PR_PROVIDER=github|gitlab`,
    );
  }
  const repository =
    (provider === "github" ? env.GITHUB_REPOSITORY : (env.GITLAB_PROJECT ?? env.CI_PROJECT_PATH)) ??
    remote?.path;
  if (!repository) {
    throw new InvalidInputError(
      `cannot tell the repository of ${remoteUrl}; set ${provider === "github" ? "GITHUB_REPOSITORY=owner/repo" : "GITLAB_PROJECT=group/project"}`,
    );
  }
  const host = remote?.host ?? (provider === "github" ? "github.com" : "gitlab.com");
  const apiUrl =
    provider === "github"
      ? (env.GITHUB_API_URL ?? (host !== "github.com" ? `https://${host}/api/v3` : "https://api.github.com"))
      : (env.GITLAB_API_URL ?? `https://${host}/api/v4`);
  return { provider, repository, host, apiUrl: apiUrl.replace(/\/+$/, "") };
}
