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
// process once admitted. Refused, it exits 75 with one `claude-guard: ...` line on stderr and nothing on
// stdout (the guard never writes there). The SDK reads no stderr from a custom spawn, so this module, inside
// the host, reports that line in the stream the SDK reads, in the shape the CLI itself uses for a launch it
// refuses (a `result` frame with is_error), and the SDK's error reads
//   "Claude Code returned an error result: claude-guard: refused: 2 of 2 Claude sessions already running ..."
//
// The simpler alternative needs no module: pathToClaudeCodeExecutable pointing at the guard's entry point
// (`claude-guard-shim`, or the `claude` shim `claude-guard install` wrote), with the real CLI and the settings
// in `env` (CLAUDE_GUARD_REAL_CLAUDE, CLAUDE_GUARD_MAX_SESSIONS, ...). See docs/sdk.md.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PassThrough } from 'node:stream';

const GUARD_PREFIX = 'claude-guard: ';
// How long `exit` waits for the SDK to read the error frame before it is passed on regardless.
const FRAME_READ_TIMEOUT_MS = 2000;

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
  dieWithParent: 'CLAUDE_GUARD_DIE_WITH_PARENT',
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
  // claude-guard is not on PyPI: it installs from its repository (a checkout or a wheel built from one).
  throw new Error('claude-guard: the claude-guard program was not found on PATH; install it from a checkout of its '
    + 'repository (pipx install /path/to/claude-guard, or scripts/setup there), or pass '
    + 'guardedSpawn({ claudeGuard: "/path/to/claude-guard" }) or set CLAUDE_GUARD_BIN');
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
 * countUnguarded, realClaude, stateDir, lockTimeout, keepMarkers, stripEnv, keepEnv, dieWithParent, unknownBatch),
 * plus `claudeGuard` (path of the claude-guard program; default $CLAUDE_GUARD_BIN, then PATH) and `stderr` (called
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
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    // stderr: passed on (to the callback, else the host's own stderr), and the guard's line kept.
    let guardLine = null;
    let stderrHead = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      if (guardLine === null && stderrHead.length < 8192) {
        stderrHead += chunk;
        const line = stderrHead.split('\n').find((l) => l.startsWith(GUARD_PREFIX) && stderrHead.includes(l + '\n'));
        if (line) guardLine = line;
      }
      try {
        if (options.stderr) options.stderr(chunk);
        else process.stderr.write(chunk);
      } catch {
        // a throwing callback must not take the session down
      }
    });
    reportRefusalInStream(child, () => guardLine);
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

/**
 * The SDK reads the CLI's stdout as a stream of JSON messages and turns an error `result` message into its
 * error. When the guard refuses (or cannot start) a launch, the process exits non-zero having written nothing
 * on stdout and one `claude-guard: ...` line on stderr. Here, in the host, that line becomes the same frame the
 * CLI writes for a launch it refuses itself, put into the stream the SDK reads; `exit`/`close` reach the SDK
 * only after it has read the frame (or after FRAME_READ_TIMEOUT_MS), so it cannot tear down first.
 */
function reportRefusalInStream(child, getGuardLine) {
  const real = child.stdout;
  const out = new PassThrough();
  let sawOutput = false;
  real.on('data', (chunk) => {
    sawOutput = true;
    out.write(chunk);
  });
  const held = [];
  let exitCode = null;
  let realEnded = false;
  let released = false;
  const emit = child.emit.bind(child);
  const release = () => {
    if (released) return;
    released = true;
    for (const [event, args] of held) emit(event, ...args);
  };
  let stderrEnded = false;
  child.stderr.on('end', () => {
    stderrEnded = true;
    finish();
  });
  const finish = () => {
    // Decide once everything is in: the exit status, all of stdout, and all of stderr (the guard's line).
    if (!realEnded || !stderrEnded || exitCode === null || out.writableEnded) return;
    const line = getGuardLine();
    if (exitCode !== 0 && !sawOutput && line) {
      const frame = {
        type: 'result', subtype: 'error_during_execution', is_error: true, duration_ms: 0, duration_api_ms: 0,
        num_turns: 0, stop_reason: null, session_id: randomUUID(), total_cost_usd: 0,
        usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
        modelUsage: {}, permission_denials: [], errors: [line],
      };
      out.end(JSON.stringify(frame) + '\n');
      out.once('end', release);
      setTimeout(release, FRAME_READ_TIMEOUT_MS).unref();
    } else {
      out.end();
      release();
    }
  };
  real.on('end', () => {
    realEnded = true;
    finish();
  });
  child.emit = (event, ...args) => {
    if ((event === 'exit' || event === 'close') && !released) {
      if (event === 'exit') exitCode = args[0] ?? 1; // killed by a signal: code null, signal set
      held.push([event, args]);
      finish();
      return true;
    }
    return emit(event, ...args);
  };
  Object.defineProperty(child, 'stdout', { value: out, configurable: true, enumerable: true, writable: true });
}

/** Ready to use with the default settings (onCap 'wait'; the rest from the user's claude-guard config). */
export const spawnClaudeCodeProcess = guardedSpawn();
