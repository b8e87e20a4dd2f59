// The local runtime's Node.js bootstrap: runs `_HANDLER` (file.export) from LAMBDA_TASK_ROOT
// against the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API, following the contract of AWS's
// Node.js runtime (aws-lambda-ric): async, callback and streaming handlers
// (`awslambda.streamifyResponse`, `awslambda.HttpResponseStream.from`), the context object,
// console lines as `time\trequestId\tLEVEL\tmessage`, errors as {errorType, errorMessage, trace}.
// Standard library only. It exits as soon as the Runtime API is unreachable.
"use strict";

const http = require("node:http");
const path = require("node:path");
const fs = require("node:fs");
const util = require("node:util");
const { Writable } = require("node:stream");
const { pathToFileURL } = require("node:url");

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const BASE = "/2018-06-01/runtime";
const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HTTP_PRELUDE = "application/vnd.awslambda.http-integration-response";
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const [apiHost, apiPort] = API.split(":");
let currentRequestId = "";
let currentInvocation = null;

function gone(error) {
  process.stderr.write(`Runtime API unreachable (${error.code || error.message}): exiting\n`);
  process.exit(1);
}

function request(method, route, body, headers) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: apiHost, port: Number(apiPort), method, path: BASE + route, agent, headers },
      (res) => {
        const parts = [];
        res.on("data", (c) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
        res.on("error", gone);
      },
    );
    req.on("error", gone);
    req.end(body);
  });
}

// -- console ----------------------------------------------------------------------------
for (const [name, level] of [["log", "INFO"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["debug", "DEBUG"], ["trace", "TRACE"]]) {
  console[name] = (...args) => {
    const line = `${new Date().toISOString()}\t${currentRequestId || "undefined"}\t${level}\t${util.format(...args)}`;
    process.stdout.write(line.replace(/\n/g, "\r") + "\n");
  };
}

// -- errors -----------------------------------------------------------------------------
function toError(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || "Error",
      errorMessage: error.message,
      trace: String(error.stack || "").split("\n"),
    };
  }
  try {
    return { errorType: "string", errorMessage: typeof error === "string" ? error : JSON.stringify(error), trace: [] };
  } catch {
    return { errorType: "handled", errorMessage: "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack", trace: [] };
  }
}

class UserError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

// -- streaming --------------------------------------------------------------------------
class HttpResponseStream {
  static from(underlying, metadata) {
    underlying.setContentType(HTTP_PRELUDE);
    underlying.write(JSON.stringify(metadata ?? {}));
    underlying.write(Buffer.alloc(8));
    return underlying;
  }
}

globalThis.awslambda = {
  streamifyResponse(handler, options) {
    handler[STREAMING] = "response";
    handler.streamOptions = options;
    return handler;
  },
  HttpResponseStream,
};

function responseStream(requestId) {
  let contentType = "application/octet-stream";
  let req = null;
  let finished;
  const done = new Promise((resolve) => (finished = resolve));
  const open = () => {
    if (req) return req;
    req = http.request({
      host: apiHost,
      port: Number(apiPort),
      method: "POST",
      path: `${BASE}/invocation/${requestId}/response`,
      agent,
      headers: {
        "Lambda-Runtime-Function-Response-Mode": "streaming",
        "Transfer-Encoding": "chunked",
        "Content-Type": contentType,
        Trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
      },
    }, (res) => {
      res.resume();
      res.on("end", finished);
    });
    req.on("error", gone);
    return req;
  };
  const stream = new Writable({
    write(chunk, encoding, callback) {
      open().write(chunk, encoding, callback);
    },
    final(callback) {
      open().end();
      callback();
    },
  });
  stream.setContentType = (value) => {
    contentType = value;
  };
  stream.fail = (error) => {
    const r = open();
    const detail = toError(error);
    r.addTrailers({
      "Lambda-Runtime-Function-Error-Type": detail.errorType,
      "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(detail)).toString("base64"),
    });
    r.end();
  };
  stream.done = done;
  return stream;
}

// -- init -------------------------------------------------------------------------------
async function load() {
  const handlerSpec = process.env._HANDLER || "";
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const dot = handlerSpec.lastIndexOf(".");
  if (dot < 1) throw new UserError("Runtime.MalformedHandlerName", `Bad handler ${handlerSpec}`);
  const moduleName = handlerSpec.slice(0, dot);
  const exportPath = handlerSpec.slice(dot + 1);
  const base = path.resolve(root, moduleName);
  const file = [".js", ".mjs", ".cjs"].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) {
    throw new UserError("Runtime.ImportModuleError", `Error: Cannot find module '${moduleName}'`);
  }
  let loaded;
  try {
    loaded = await import(pathToFileURL(file).href);
  } catch (error) {
    if (error instanceof SyntaxError) throw new UserError("Runtime.UserCodeSyntaxError", `${error.name}: ${error.message}`);
    throw error;
  }
  const handler = loaded[exportPath] ?? loaded.default?.[exportPath];
  if (typeof handler !== "function") {
    throw new UserError("Runtime.HandlerNotFound", `${moduleName}.${exportPath} is undefined or not exported`);
  }
  return handler;
}

// -- invoke -----------------------------------------------------------------------------
function context(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"]);
  const clientContext = headers["lambda-runtime-client-context"];
  const identity = headers["lambda-runtime-cognito-identity"];
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    clientContext: clientContext ? JSON.parse(clientContext) : undefined,
    identity: identity ? JSON.parse(identity) : undefined,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

async function postError(requestId, error) {
  const detail = toError(error);
  await request("POST", `/invocation/${requestId}/error`, JSON.stringify(detail), {
    "Content-Type": "application/json",
    "Lambda-Runtime-Function-Error-Type": detail.errorType,
  });
}

function runBuffered(handler, event, ctx) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (error, result) => {
      if (settled) return;
      settled = true;
      if (error !== undefined && error !== null) reject(error);
      else resolve(result);
    };
    ctx.done = callback;
    ctx.succeed = (result) => callback(null, result);
    ctx.fail = (error) => callback(error ?? "handled");
    try {
      const returned = handler(event, ctx, callback);
      if (returned && typeof returned.then === "function") returned.then((r) => callback(null, r), (e) => callback(e ?? "handled"));
      else if (handler.length < 3) callback(null, returned);
    } catch (error) {
      callback(error);
    }
  });
}

async function invoke(handler, next) {
  const requestId = next.headers["lambda-runtime-aws-request-id"];
  currentRequestId = requestId;
  currentInvocation = { requestId, answered: false };
  if (next.headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = next.headers["lambda-runtime-trace-id"];
  const ctx = context(next.headers);
  let event;
  try {
    event = JSON.parse(next.body.length ? next.body.toString("utf8") : "{}");
  } catch (error) {
    currentInvocation.answered = true;
    await postError(requestId, new UserError("Runtime.UnmarshalError", `Unable to parse event: ${error.message}`));
    return;
  }
  if (handler[STREAMING] === "response") {
    const stream = responseStream(requestId);
    try {
      await handler(event, stream, ctx);
      if (!stream.writableEnded) stream.end();
    } catch (error) {
      console.error("Invoke Error", JSON.stringify(toError(error)));
      stream.fail(error);
    }
    currentInvocation.answered = true;
    await stream.done;
    return;
  }
  let result;
  try {
    result = await runBuffered(handler, event, ctx);
  } catch (error) {
    console.error("Invoke Error", JSON.stringify(toError(error)));
    currentInvocation.answered = true;
    await postError(requestId, error);
    return;
  }
  let body;
  try {
    body = JSON.stringify(result === undefined ? null : result);
  } catch (error) {
    currentInvocation.answered = true;
    await postError(requestId, new UserError("Runtime.MarshalError", `Unable to stringify response body: ${error.message}`));
    return;
  }
  currentInvocation.answered = true;
  await request("POST", `/invocation/${requestId}/response`, body, { "Content-Type": "application/json" });
}

async function crash(error) {
  // An uncaught exception or rejection: report it for the call in progress, then exit.
  console.error("Uncaught Exception", JSON.stringify(toError(error)));
  if (currentInvocation && !currentInvocation.answered) {
    currentInvocation.answered = true;
    await postError(currentInvocation.requestId, error);
  }
  process.exit(129);
}
process.on("uncaughtException", crash);
process.on("unhandledRejection", (reason) => crash(reason instanceof Error ? reason : new UserError("Runtime.UnhandledPromiseRejection", String(reason))));

async function main() {
  let handler;
  try {
    handler = await load();
  } catch (error) {
    console.error(`${error.name}: ${error.message}`);
    const detail = toError(error);
    await request("POST", "/init/error", JSON.stringify(detail), {
      "Content-Type": "application/json",
      "Lambda-Runtime-Function-Error-Type": detail.errorType,
    });
    process.exit(1);
  }
  for (;;) {
    currentRequestId = "";
    const next = await request("GET", "/invocation/next");
    if (next.status !== 200) gone(new Error(`/next answered ${next.status}`));
    await invoke(handler, next);
  }
}

main();
