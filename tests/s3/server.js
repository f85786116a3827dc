// An S3-compatible server for keepd's tests that checks SigV4 signatures:
// s3rver stores and answers (it reads signatures but does not verify
// version 4 ones), and every request is first checked here: a presigned
// (query-string) SigV4 request is signed again with the AWS SDK's own
// signer (@smithy/signature-v4) under the one key pair, S3RVER / S3RVER,
// and refused with 403 SignatureDoesNotMatch unless the signatures, the
// signed headers, the scope and the validity time all agree. Requests
// signed in a header are refused (keepd presigns every request); unsigned
// ones pass only with `x-test-anonymous: 1` (the tests' own look at the
// bucket). Objects live in a directory the caller owns.
//
//   node server.js DIR BUCKET LOG [FAIL_PART]
//
// Prints "READY <port>" once listening on 127.0.0.1 (an ephemeral port),
// and appends "<METHOD> <url>" for every request to LOG (the tests count
// multipart parts there). Two things s3rver lacks are answered here before
// it: AbortMultipartUpload (DELETE ?uploadId=…: 204, logged, the upload is
// never completed, so no object appears), and, with FAIL_PART=N, a 500 to
// the upload of part N (a store failing mid-upload). Stops on SIGTERM or
// when stdin closes.
"use strict";
const fs = require("fs");
const http = require("http");
const S3rver = require("s3rver");
const { SignatureV4 } = require("@smithy/signature-v4");
const { Sha256 } = require("@aws-crypto/sha256-js");

const ACCESS_KEY = "S3RVER";
const SECRET = "S3RVER";

// Why the request is refused, or null.
async function refusal(req) {
  const [rawPath] = req.url.split("?");
  const q = new URL(req.url, "http://x").searchParams;
  if (!q.has("X-Amz-Signature")) {
    if (req.headers.authorization) return "header-signed requests are not accepted here";
    return req.headers["x-test-anonymous"] === "1" ? null : "unsigned request";
  }
  if (q.get("X-Amz-Algorithm") !== "AWS4-HMAC-SHA256") return "unknown algorithm";
  const [key, day, region, service, term] = (q.get("X-Amz-Credential") || "").split("/");
  if (key !== ACCESS_KEY || service !== "s3" || term !== "aws4_request") return "bad credential";
  const amzDate = q.get("X-Amz-Date") || "";
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(amzDate);
  if (!m || day !== amzDate.slice(0, 8)) return "bad date";
  const date = new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  const expires = Number(q.get("X-Amz-Expires"));
  const now = Date.now();
  if (!(expires > 0) || now > date.getTime() + expires * 1000 || date.getTime() > now + 900e3) {
    return "expired or not yet valid";
  }
  const signed = (q.get("X-Amz-SignedHeaders") || "").split(";");
  if (!signed.includes("host")) return "host not signed";
  const headers = {};
  for (const h of signed) {
    if (req.headers[h] === undefined) return `signed header ${h} missing`;
    headers[h] = req.headers[h];
  }
  const query = {};
  for (const [k, v] of q) {
    if (!k.startsWith("X-Amz-")) query[k] = v;
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
    region,
    service: "s3",
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  // A presigned request's payload is UNSIGNED-PAYLOAD (as the AWS SDK's
  // S3 presigner signs it: the header gives the payload hash and is
  // neither signed nor moved into the query).
  const payload = new Set(["x-amz-content-sha256"]);
  const expect = await signer.presign(
    {
      method: req.method,
      protocol: "http:",
      hostname: "x",
      path: rawPath,
      query,
      headers: { ...headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    },
    { signingDate: date, expiresIn: expires, unsignableHeaders: payload, unhoistableHeaders: payload },
  );
  if (expect.query["X-Amz-SignedHeaders"] !== q.get("X-Amz-SignedHeaders")) {
    return "signed headers differ";
  }
  return expect.query["X-Amz-Signature"] === q.get("X-Amz-Signature")
    ? null
    : "signature does not match";
}

const [dir, bucket, log, failPart] = process.argv.slice(2);
if (!dir || !bucket || !log) {
  console.error("usage: node server.js DIR BUCKET LOG [FAIL_PART]");
  process.exit(2);
}
const s3 = new S3rver({
  silent: true,
  directory: dir,
  allowMismatchedSignatures: false,
  configureBuckets: [{ name: bucket }],
});

function answer(req, res, status, body) {
  req.resume();
  req.on("end", () => {
    res.writeHead(status, { "content-type": "application/xml" });
    res.end(body);
  });
}

(async () => {
  await s3.configureBuckets();
  const koa = s3.callback();
  const server = http.createServer(async (req, res) => {
    fs.appendFileSync(log, `${req.method} ${req.url}\n`);
    const why = await refusal(req).catch((e) => `can't check: ${e}`);
    if (why) {
      fs.appendFileSync(log, `REFUSED ${why}\n`);
      return answer(
        req,
        res,
        403,
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>${why}</Message></Error>`,
      );
    }
    const q = new URL(req.url, "http://x").searchParams;
    if (req.method === "DELETE" && q.has("uploadId")) {
      return answer(req, res, 204, "");
    }
    if (failPart && req.method === "PUT" && q.get("partNumber") === failPart) {
      return answer(
        req,
        res,
        500,
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected failure</Message></Error>',
      );
    }
    koa(req, res);
  });
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`READY ${server.address().port}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
})();
