// OpenTelemetry JS's Jaeger remote sampler asking Osprey for a service's strategy: prints, as JSON,
// how many of 1000 new root spans of each operation it samples once it has the strategy.
// Usage: node remote_sampler.js <endpoint> <service> <operation>...
const crypto = require('crypto');
const api = require('@opentelemetry/api');
const { AlwaysOffSampler, SamplingDecision } = require('@opentelemetry/sdk-trace');
const { JaegerRemoteSampler } = require('@opentelemetry/sampler-jaeger-remote');

const [endpoint, serviceName, ...operations] = process.argv.slice(2);
const sampler = new JaegerRemoteSampler({
  endpoint,
  serviceName,
  poolingInterval: 200,
  initialSampler: new AlwaysOffSampler(),
});
setTimeout(() => {
  const sampled = {};
  for (const operation of operations) {
    sampled[operation] = 0;
    for (let i = 0; i < 1000; i++) {
      const traceId = crypto.randomBytes(16).toString('hex');
      const result = sampler.shouldSample(api.ROOT_CONTEXT, traceId, operation, api.SpanKind.SERVER, {}, []);
      if (result.decision === SamplingDecision.RECORD_AND_SAMPLED) {
        sampled[operation] += 1;
      }
    }
  }
  console.log(JSON.stringify(sampled));
  process.exit(0);
}, 1500);
