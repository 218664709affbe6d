// The applier suite (test/unit/layer-tar-apply.test.ts) again, every apply through
// applyLayerInWorker: same trees, same Host calls (proxied to this thread), same error kinds and
// messages, cancellation and source errors across the thread boundary.
process.env.BERTH_TEST_APPLY_IN_WORKER = '1';
await import('./layer-tar-apply.test.ts');
