// A Node.js Lambda handler, run by the local runtime with the machine's node.
exports.handler = async (event, context) => {
  console.log("hello-node got", JSON.stringify(event));
  const args = Array.isArray(event.args) ? event.args : [];
  return {
    success: true,
    message: `hello from Node.js ${process.version}${args.length ? ": " + args.join(" ") : ""}`,
    request_id: context.awsRequestId,
    remaining_ms: context.getRemainingTimeInMillis(),
  };
};
