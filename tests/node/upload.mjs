// Upload one file to a running server with tus-js-client, stop after the first chunk, resume from
// the server's offset with a new Upload (as an app would after a restart), and report as JSON.
// Usage: node upload.mjs <endpoint> <bearer token> <file> <sha256 hex> [chunk size]
import { readFileSync } from 'node:fs'
import * as tus from 'tus-js-client'

const [endpoint, token, path, sha256, chunkArg] = process.argv.slice(2)
const data = readFileSync(path)
const chunkSize = Number(chunkArg || 65536)
const common = {
  endpoint,
  chunkSize,
  retryDelays: [0, 200, 500],
  headers: { Authorization: `Bearer ${token}` },
  metadata: { sha256, filename: 'bodycam-clip.jpg', filetype: 'image/jpeg' },
  storeFingerprintForResuming: false,
}

function run (options) {
  return new Promise((resolve, reject) => {
    let upload
    upload = new tus.Upload(data, {
      ...common,
      ...options,
      onChunkComplete: (size, sent, total) => {
        if (options.stopAfterFirstChunk && sent < total) {
          upload.abort(false).then(() => resolve({ url: upload.url, sent, stopped: true }))
        }
      },
      onSuccess: () => resolve({ url: upload.url, sent: data.length, stopped: false }),
      onError: reject,
    })
    upload.start()
  })
}

try {
  const first = await run({ stopAfterFirstChunk: true })
  const second = await run({ uploadUrl: first.url })
  console.log(JSON.stringify({ first, second, size: data.length }))
} catch (error) {
  console.error(String(error))
  process.exit(1)
}
