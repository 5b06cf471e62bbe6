/**
 * Regular expressions from List filters (`name~=…`, `labels.x~=…`) come from
 * whoever can reach the socket. containerd evaluates them with Go's RE2, whose
 * run time is linear in the input. V8's default engine backtracks: a pattern
 * like `^(a|a)*$` against a 40-character name takes hours, and since matching
 * is synchronous it freezes the whole daemon (every other RPC, health checks).
 *
 * V8 ships a linear-time engine for the `l` flag behind
 * --enable-experimental-regexp-engine. It rejects exactly the constructs that
 * need backtracking (backreferences, lookaround), which RE2 does not have
 * either, so the accepted language stays close to containerd's. The flag only
 * makes the `l` flag available; regular expressions without it are unaffected.
 */
import * as v8 from 'node:v8';

let enabled = false;

function enableLinearEngine(): void {
  if (enabled) return;
  v8.setFlagsFromString('--enable-experimental-regexp-engine');
  enabled = true;
}

/**
 * Compiles `source` for linear-time matching; throws an Error whose message
 * says why it was refused (syntax, or a construct that needs backtracking).
 * Never falls back to the backtracking engine.
 */
export function compileLinearRegExp(source: string): RegExp {
  enableLinearEngine();
  try {
    return new RegExp(source, 'l');
  } catch (err) {
    const message = (err as Error).message;
    if (/linear time/i.test(message)) {
      throw new Error(`${message} (backreferences and lookaround need backtracking; containerd's RE2 syntax has neither)`);
    }
    throw err;
  }
}
