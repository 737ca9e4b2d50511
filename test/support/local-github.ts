/**
 * A GitHub Enterprise-like host on 127.0.0.1 for the real `gh` binary: HTTPS with a throwaway
 * self-signed certificate, the token check `gh auth` makes, and the GraphQL operations `gh pr create`
 * and `gh pr view` send, over pull requests kept in memory. An operation it does not know is answered
 * with a GraphQL error naming it, so a gh that asks for more fails loudly instead of passing.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemToolPresent } from "./system-tool.js";

/** The real gh these tests drive (Debian's package). */
export const GH = "/usr/bin/gh";
export const ghPresent = systemToolPresent(GH, "the gh pull request tests", "gh");

export interface LocalPull {
  number: number;
  url: string;
  title: string;
  body: string;
  headRefName: string;
  baseRefName: string;
  state: "OPEN" | "CLOSED" | "MERGED";
}

interface GraphqlRequest {
  query: string;
  variables?: Record<string, unknown>;
}

function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { key, cert };
}

export async function localGitHub(owner = "acme", name = "demo") {
  const dir = mkdtempSync(join(tmpdir(), "tgz-github-"));
  const tls = selfSignedCertificate(dir);
  const pulls: LocalPull[] = [];
  const operations: string[] = [];
  let host = "";
  const repository = {
    id: "R_1",
    name,
    owner: { login: owner },
    hasIssuesEnabled: true,
    description: "",
    hasWikiEnabled: false,
    viewerPermission: "ADMIN",
    defaultBranchRef: { name: "main" },
    parent: null,
    mergeCommitAllowed: true,
    rebaseMergeAllowed: true,
    squashMergeAllowed: true,
  };
  const node = (p: LocalPull) => ({
    ...p,
    id: `PR_${p.number}`,
    isCrossRepository: false,
    headRepositoryOwner: { id: "U_1", login: owner },
  });

  function answer({ query, variables = {} }: GraphqlRequest): unknown {
    const op = /(?:query|mutation)\s+(\w+)/.exec(query)?.[1] ?? "anonymous";
    operations.push(op);
    const known = (v: Record<string, unknown>) => v.owner === owner && (v.name ?? v.repo) === name;
    switch (op) {
      case "UserCurrent":
        return { data: { viewer: { login: "tgz-bot" } } };
      case "RepositoryInfo":
        return known(variables)
          ? { data: { repository } }
          : { errors: [{ type: "NOT_FOUND", message: "Could not resolve to a Repository" }] };
      case "PullRequestForBranch": {
        const states = variables.states as string[] | null;
        const nodes = pulls
          .filter((p) => p.headRefName === variables.headRefName && (!states || states.includes(p.state)))
          .reverse()
          .map(node);
        return { data: { repository: { pullRequests: { nodes }, defaultBranchRef: { name: "main" } } } };
      }
      case "PullRequestCreate": {
        const input = variables.input as Record<string, string>;
        const number = pulls.length + 1;
        const pull: LocalPull = {
          number,
          url: `https://${host}/${owner}/${name}/pull/${number}`,
          title: input.title ?? "",
          body: input.body ?? "",
          headRefName: input.headRefName ?? "",
          baseRefName: input.baseRefName ?? "",
          state: "OPEN",
        };
        pulls.push(pull);
        return { data: { createPullRequest: { pullRequest: { id: `PR_${number}`, url: pull.url } } } };
      }
      default:
        return { errors: [{ message: `the local GitHub does not answer ${op}` }] };
    }
  }

  const server = createServer({ key: readFileSync(tls.key), cert: readFileSync(tls.cert) }, (req, res) => {
    let raw = "";
    req.on("data", (chunk) => {
      raw += chunk;
    });
    req.on("end", () => {
      const headers = { "content-type": "application/json", "x-oauth-scopes": "repo, read:org" };
      if (req.headers.authorization !== "token local-token") {
        res.writeHead(401, headers).end(JSON.stringify({ message: "Bad credentials" }));
        return;
      }
      const body = req.url === "/api/graphql" ? answer(JSON.parse(raw) as GraphqlRequest) : {};
      res.writeHead(200, headers).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const configDir = join(dir, "gh-config");
  // what gh needs to find its login (not the user's own) and trust the certificate
  const env: NodeJS.ProcessEnv = {
    GH_CONFIG_DIR: configDir,
    SSL_CERT_FILE: tls.cert,
    GH_PROMPT_DISABLED: "1",
    GH_NO_UPDATE_NOTIFIER: "1",
  };
  return {
    host,
    env,
    pulls,
    /** The GraphQL operations gh sent, in order. */
    operations,
    /**
     * Logs gh in to this host: the hosts.yml `gh auth login` writes (which refuses a host with a
     * port on the command line, so the file is written as it would be).
     */
    login(token = "local-token") {
      mkdirSync(configDir, { recursive: true });
      writeFileSync(
        join(configDir, "hosts.yml"),
        `${host}:\n    oauth_token: ${token}\n    user: tgz-bot\n    git_protocol: https\n`,
      );
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
