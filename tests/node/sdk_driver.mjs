// Test driver: runs the real @anthropic-ai/claude-agent-sdk query() once per prompt, concurrently, and prints
// one JSON line per query on stdout: {"i", "ok", "result" | "error", "session_id"}.
//
// Config comes as JSON in DRIVER_CONFIG:
//   sdk       path of the SDK's sdk.mjs (the test's npm cache is not where node looks for packages)
//   module    path of guard-spawn.mjs (mode "spawn")
//   mode      "spawn" (spawnClaudeCodeProcess: guardedSpawn(guard)) or "path" (pathToClaudeCodeExecutable)
//   guard     options for guardedSpawn (null: the module's spawnClaudeCodeProcess export)
//   executable  the pathToClaudeCodeExecutable (mode "path"; optional with "spawn": the command it is given)
//   prompts   the prompts, one query each, all at once
//   cwd, env  passed to the SDK as options.cwd / options.env
//   stderr    true: collect the CLI's stderr through the module's stderr option and print it with the result
import { pathToFileURL } from 'node:url';

const config = JSON.parse(process.env.DRIVER_CONFIG);
const { query } = await import(pathToFileURL(config.sdk).href);

async function one(i, prompt) {
  const options = { cwd: config.cwd, env: config.env, maxTurns: 1 };
  let stderr = '';
  if (config.mode === 'spawn') {
    const guard = await import(pathToFileURL(config.module).href);
    const extra = config.stderr ? { stderr: (chunk) => { stderr += chunk; } } : {};
    // guard null: the module's ready-made export, with the default settings
    options.spawnClaudeCodeProcess = config.guard === null
      ? guard.spawnClaudeCodeProcess : guard.guardedSpawn({ ...config.guard, ...extra });
    if (config.executable) options.pathToClaudeCodeExecutable = config.executable;
  } else {
    options.pathToClaudeCodeExecutable = config.executable;
  }
  const out = { i, ok: false };
  try {
    for await (const message of query({ prompt, options })) {
      if (message.type === 'system' && message.subtype === 'init') out.session_id = message.session_id;
      if (message.type === 'result') {
        out.ok = message.subtype === 'success' && !message.is_error;
        out.result = message.result;
        out.subtype = message.subtype;
      }
    }
  } catch (error) {
    out.ok = false;
    out.error = String(error?.message ?? error);
  }
  if (config.stderr) out.stderr = stderr;
  return out;
}

const results = await Promise.all(config.prompts.map((p, i) => one(i, p)));
for (const r of results) process.stdout.write(JSON.stringify(r) + '\n');
