// A Node.js handler that streams its response (InvokeWithResponseStream): each write reaches
// the caller as it happens, as a PayloadChunk event.
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType("text/plain");
  const count = Number(event.count ?? 3);
  for (let i = 1; i <= count; i++) {
    responseStream.write(`chunk ${i} of ${count}\n`);
    await new Promise((resolve) => setTimeout(resolve, Number(event.delay_ms ?? 10)));
  }
  if (event.fail) throw new Error("failed after streaming");
  responseStream.end();
});
