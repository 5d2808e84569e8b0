# The Jaeger agent's UDP interface (jaegertracing/jaeger-idl thrift/agent.thrift).
include "jaeger.thrift"

namespace py agent

service Agent {
  oneway void emitBatch(1: jaeger.Batch batch)
}
