import { generateKeyPairSync, randomBytes, sign } from 'node:crypto'

/**
 * A self-signed certificate for running the example app over https on this machine (`npm start`): the
 * session cookie the app needs inside the EHR's frame is `Secure`, which express-session sets only over
 * https. Made with node:crypto alone (an ECDSA P-256 key and a DER-encoded X.509 v3 certificate), so that
 * `npm start` needs no openssl. Browsers warn about it once ("not private"); never use it outside localhost.
 */

// DER: tag, length, content.
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  const n = body.length
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), body])
}
const sequence = (...content: Buffer[]) => der(0x30, ...content)

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number)
  const bytes = [40 * a + b]
  for (const arc of rest) {
    const base128 = [arc & 0x7f]
    for (let v = arc >> 7; v > 0; v >>= 7) base128.unshift((v & 0x7f) | 0x80)
    bytes.push(...base128)
  }
  return der(0x06, Buffer.from(bytes))
}

const utcTime = (date: Date) => der(0x17, Buffer.from(`${date.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`))
const commonName = (cn: string) => sequence(der(0x31, sequence(oid('2.5.4.3'), der(0x0c, Buffer.from(cn)))))
const extension = (id: string, value: Buffer) => sequence(oid(id), der(0x04, value))
const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'))

export interface Certificate {
  /** PKCS#8 PEM */
  key: string
  /** PEM */
  cert: string
}

/** A fresh key and a self-signed certificate for `localhost` and `127.0.0.1` (subjectAltName), valid for `days`. */
export function selfSignedCertificate(days = 1): Certificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  // A positive INTEGER in its shortest form (DER): no sign bit, and no leading zero byte, which OpenSSL refuses
  // ("illegal padding") — one start in 256 failed before the second rule.
  const serial = randomBytes(16)
  serial[0] = (serial[0] & 0x7f) | 0x40
  const now = Date.now()
  const subject = commonName('localhost')
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))), // v3
    der(0x02, serial),
    ECDSA_WITH_SHA256,
    subject,
    sequence(utcTime(new Date(now - 60_000)), utcTime(new Date(now + days * 86_400_000))),
    subject,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, sequence(
      // dNSName localhost, iPAddress 127.0.0.1
      extension('2.5.29.17', sequence(der(0x82, Buffer.from('localhost')), der(0x87, Buffer.from([127, 0, 0, 1])))),
      // extKeyUsage serverAuth
      extension('2.5.29.37', sequence(oid('1.3.6.1.5.5.7.3.1'))),
    )),
  )
  const signature = sign('sha256', tbs, privateKey)
  const certificate = sequence(tbs, ECDSA_WITH_SHA256, der(0x03, Buffer.from([0]), signature))
  const base64 = certificate.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`,
  }
}
