import { describe, expect, it } from 'vitest';
import { promMetrics, promRegistry } from '../../src/services/prometheus.js';

describe('Prometheus scrape', () => {
  it('answers within a second when the queue depths never come (a Redis that accepts but hangs)', async () => {
    const metrics = promMetrics();
    metrics.setQueueDepthSource(async () => ({ notify: 3 }));
    expect(await promRegistry.metrics()).toContain('agent_otp_queue_depth{queue="notify"} 3');
    metrics.setQueueDepthSource(() => new Promise(() => undefined));
    const started = performance.now();
    const text = await promRegistry.metrics();
    expect(performance.now() - started).toBeLessThan(1000);
    // The last values are kept rather than failing the scrape.
    expect(text).toContain('agent_otp_queue_depth{queue="notify"} 3');
  });
});
