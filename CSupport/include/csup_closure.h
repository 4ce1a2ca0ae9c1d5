/*
 * Calling a Swift closure that the caller keeps alive, without making it
 * escaping.
 *
 * A fork/join job record lives on the joiner's stack and is run by a
 * thief while the joiner waits for it, so the closure it holds never
 * outlives the joiner's frame. Swift's `withoutActuallyEscaping` would
 * allocate a verification box per call; these two functions instead take
 * the closure's two words (function, context) as Swift passes them and
 * call them back with the Swift calling convention. Declared to Swift with
 * @_silgen_name in ConcRT (csup_closure_words, in closure.c). Clang only (swiftcall).
 *
 * Contract: the closure has type `() -> Void`; the caller guarantees the
 * closure (and what it captures) stays alive until the last call returns.
 */
#ifndef CSUP_CLOSURE_H
#define CSUP_CLOSURE_H

/* Calls a `() -> Void` closure from its function and context words. */
void csup_closure_call(void *fn, void *ctx);

#endif
