// claude-guard for Node hosts of the Claude Agent SDK (@anthropic-ai/claude-agent-sdk).
//
//   import { query } from '@anthropic-ai/claude-agent-sdk';
//   import { guardedSpawn } from '/path/to/guard-spawn.mjs';
//   // the path: python -c 'from claude_guard.sdk import node_module; print(node_module())'
//
//   for await (const message of query({
//     prompt: 'hi',
//     options: { spawnClaudeCodeProcess: guardedSpawn({ maxSessions: 2, onCap: 'wait' }) },
//   })) { ... }
//
// The SDK calls spawnClaudeCodeProcess({command, args, cwd, env, signal}) with the command line it would run
// (its bundled native `claude`, the `pathToClaudeCodeExecutable` you gave, or `node .../cli.js`) and wants a
// ChildProcess-like object back. This runs `claude-guard exec [settings] -- command ...args` instead: the
// guard cleans the environment, repairs the arguments, applies the duplicate-session and cap rules, registers
// the session, and then execs that very command line (same PID), so the object returned is the CLI's own
// process once admitted. Refused, it exits 75 and the SDK's error reads
//   "Claude Code returned an error result: claude-guard: refused: 2 of 2 Claude sessions already running ..."
// (the guard reports a refused stream-json launch in the stream, as the CLI itself does).
//
// The simpler alternative needs no module: pathToClaudeCodeExecutable pointing at the guard's entry point
// (`claude-guard-shim`, or the `claude` shim `claude-guard install` wrote), with the real CLI and the settings
// in `env` (CLAUDE_GUARD_REAL_CLAUDE, CLAUDE_GUARD_MAX_SESSIONS, ...). See docs/sdk.md.

import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// Settings `claude-guard exec` takes as options: they stay on its command line and never reach the CLI's
// environment (from where every claude the session's tools start would inherit them).
const EXEC_FLAGS = {
  maxSessions: '--max-sessions',
  onCap: '--on-cap',
  waitTimeout: '--wait-timeout',
  onDuplicate: '--on-duplicate',
};
// The other launch settings, as the CLAUDE_GUARD_* variables the guard reads.
const ENV_SETTINGS = {
  strict: 'CLAUDE_GUARD_STRICT',
  countUnguarded: 'CLAUDE_GUARD_COUNT_UNGUARDED',
  realClaude: 'CLAUDE_GUARD_REAL_CLAUDE',
  stateDir: 'CLAUDE_GUARD_STATE_DIR',
  lockTimeout: 'CLAUDE_GUARD_LOCK_TIMEOUT',
  keepMarkers: 'CLAUDE_GUARD_KEEP_MARKERS',
  stripEnv: 'CLAUDE_GUARD_STRIP_ENV',
  keepEnv: 'CLAUDE_GUARD_KEEP_ENV',
  unknownBatch: 'CLAUDE_GUARD_UNKNOWN_BATCH',
};
// Options of this module itself, not of the guard.
const OWN_OPTIONS = ['claudeGuard', 'stderr'];

/** Every option guardedSpawn accepts. */
export const OPTIONS = Object.freeze([...Object.keys(EXEC_FLAGS), ...Object.keys(ENV_SETTINGS), ...OWN_OPTIONS]);

function isExecutable(path) {
  try {
    if (!statSync(path).isFile()) return false;
    if (process.platform !== 'win32') accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The `claude-guard` executable: `claudeGuard` if given, else $CLAUDE_GUARD_BIN, else the first on PATH (the
 * host's, or the PATH of `env`). Throws an Error saying how to point at it when none is found.
 */
export function findClaudeGuard({ claudeGuard, env = process.env } = {}) {
  const named = claudeGuard || env.CLAUDE_GUARD_BIN || process.env.CLAUDE_GUARD_BIN;
  if (named) {
    if (isExecutable(named)) return named;
    throw new Error(`claude-guard: ${named} (from ${claudeGuard ? 'the claudeGuard option' : 'CLAUDE_GUARD_BIN'}) `
      + 'is not an executable file; point it at the claude-guard program');
  }
  // Windows: only the .exe launcher pip writes; Node refuses to spawn a .cmd/.bat without a shell.
  const names = process.platform === 'win32' ? ['claude-guard.exe'] : ['claude-guard'];
  const pathVar = env.PATH ?? env.Path ?? process.env.PATH ?? '';
  for (const folder of pathVar.split(delimiter)) {
    if (!folder) continue; // an empty entry would mean the working directory: never run a program from there
    for (const name of names) {
      const candidate = join(folder, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  throw new Error('claude-guard: the claude-guard program was not found on PATH; install it (pipx install '
    + 'claude-guard), or pass guardedSpawn({ claudeGuard: "/path/to/claude-guard" }) or set CLAUDE_GUARD_BIN');
}

function text(value) {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function checkOptions(options) {
  const unknown = Object.keys(options).filter((k) => !OPTIONS.includes(k));
  if (unknown.length > 0) {
    throw new TypeError(`claude-guard: unknown option(s) ${unknown.join(', ')}; valid: ${OPTIONS.join(', ')}`);
  }
  if (options.stderr !== undefined && typeof options.stderr !== 'function') {
    throw new TypeError('claude-guard: the stderr option must be a function (chunk: string) => void');
  }
}

/**
 * How to run `command ...args` under the guard: `program` (claude-guard) with `args` (exec, its options, --,
 * the command line) and `env`, the CLAUDE_GUARD_* variables for the settings exec has no option for. `env` is
 * the environment the child will get (its PATH is searched for claude-guard).
 */
export function guardedCommand(command, args = [], options = {}, env = process.env) {
  checkOptions(options);
  const settings = { onCap: 'wait', ...options };
  const flags = [];
  for (const [key, flag] of Object.entries(EXEC_FLAGS)) {
    if (settings[key] !== undefined && settings[key] !== null) flags.push(flag, text(settings[key]));
  }
  const extra = {};
  for (const [key, name] of Object.entries(ENV_SETTINGS)) {
    if (settings[key] !== undefined && settings[key] !== null) extra[name] = text(settings[key]);
  }
  const program = findClaudeGuard({ claudeGuard: settings.claudeGuard, env });
  return { program, args: ['exec', ...flags, '--', command, ...args], env: extra };
}

/**
 * A spawnClaudeCodeProcess for the Agent SDK that runs each launch through `claude-guard exec`.
 *
 * Options: the guard's launch settings (maxSessions, onCap (default 'wait'), waitTimeout, onDuplicate, strict,
 * countUnguarded, realClaude, stateDir, lockTimeout, keepMarkers, stripEnv, keepEnv, unknownBatch), plus
 * `claudeGuard` (path of the claude-guard program; default $CLAUDE_GUARD_BIN, then PATH) and `stderr` (called
 * with each chunk of the CLI's stderr as text; default: the host's own stderr, since the SDK reads no stderr
 * from a custom spawn and the guard's one line would otherwise be lost).
 */
export function guardedSpawn(options = {}) {
  checkOptions(options); // a typo fails where the host builds its options, not at the first query
  return function spawnClaudeCodeProcess({ command, args, cwd, env, signal }) {
    const baseEnv = env ?? process.env;
    const guarded = guardedCommand(command, args, options, baseEnv);
    const child = spawn(guarded.program, guarded.args, {
      cwd,
      env: { ...baseEnv, ...guarded.env },
      stdio: ['pipe', 'pipe', options.stderr ? 'pipe' : 'inherit'],
      windowsHide: true,
    });
    if (options.stderr) {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk) => {
        try {
          options.stderr(chunk);
        } catch {
          // a throwing callback must not take the session down
        }
      });
    }
    // The SDK aborts `signal` only after its own graceful close (stdin EOF, then a grace period): end the
    // process then. Once admitted the process *is* the CLI (exec), which exits cleanly on SIGTERM; a guard
    // still waiting for a slot just exits and leaves the queue.
    if (signal) {
      const onAbort = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        child.once('exit', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return child;
  };
}

/** Ready to use with the default settings (onCap 'wait'; the rest from the user's claude-guard config). */
export const spawnClaudeCodeProcess = guardedSpawn();
