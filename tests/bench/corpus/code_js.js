// A small event-driven job queue with retries and exponential back-off.
'use strict';

const { EventEmitter } = require('node:events');

class JobQueue extends EventEmitter {
  constructor({ concurrency = 4, retries = 3, baseDelayMs = 200 } = {}) {
    super();
    this.concurrency = concurrency;
    this.retries = retries;
    this.baseDelayMs = baseDelayMs;
    this.pending = [];
    this.running = 0;
    this.stats = { done: 0, failed: 0, retried: 0 };
  }

  push(name, fn, payload = {}) {
    return new Promise((resolve, reject) => {
      this.pending.push({ name, fn, payload, attempt: 0, resolve, reject });
      this._drain();
    });
  }

  _drain() {
    while (this.running < this.concurrency && this.pending.length > 0) {
      const job = this.pending.shift();
      this.running += 1;
      this._run(job).finally(() => {
        this.running -= 1;
        this._drain();
        if (this.running === 0 && this.pending.length === 0) this.emit('idle', { ...this.stats });
      });
    }
  }

  async _run(job) {
    try {
      const result = await job.fn(job.payload);
      this.stats.done += 1;
      this.emit('done', job.name, result);
      job.resolve(result);
    } catch (err) {
      if (job.attempt < this.retries && err && err.retryable !== false) {
        job.attempt += 1;
        this.stats.retried += 1;
        const delay = this.baseDelayMs * 2 ** (job.attempt - 1) * (0.75 + Math.random() / 2);
        this.emit('retry', job.name, job.attempt, Math.round(delay));
        await new Promise((r) => setTimeout(r, delay));
        this.pending.unshift(job);
      } else {
        this.stats.failed += 1;
        this.emit('failed', job.name, err);
        job.reject(err);
      }
    }
  }
}

async function main() {
  const queue = new JobQueue({ concurrency: 2, retries: 2 });
  queue.on('retry', (name, n, ms) => console.log(`retry ${name} #${n} in ${ms} ms`));
  queue.on('idle', (s) => console.log(`idle: ${JSON.stringify(s)}`));
  const flaky = async ({ id }) => {
    if (Math.random() < 0.3) throw Object.assign(new Error(`job ${id} hiccup`), { retryable: true });
    return id * 2;
  };
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) => queue.push(`job-${i}`, flaky, { id: i })),
  );
  for (const r of results) console.log(r.status, r.value ?? r.reason.message);
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });

module.exports = { JobQueue };
