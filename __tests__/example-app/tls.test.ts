// The example app's self-signed certificate (`npm start`, the framed-launch browser tests): every one it makes
// is one that OpenSSL accepts. A serial number with a leading zero byte is not DER, and Node's https server
// refused it ("illegal padding") in one start of 256; 2,000 certificates meet that case with near certainty.
import { createPublicKey, X509Certificate } from 'node:crypto'
import { selfSignedCertificate } from '../../example-app/tls'

it('every certificate it makes parses, is self-signed by its key, names localhost and 127.0.0.1, and is valid now', () => {
  const refused: string[] = []
  for (let i = 0; i < 2000; i++) {
    const { key, cert } = selfSignedCertificate()
    try {
      const x509 = new X509Certificate(cert)
      if (!x509.verify(createPublicKey(key))) refused.push('signature')
      if (x509.subjectAltName !== 'DNS:localhost, IP Address:127.0.0.1') refused.push(`subjectAltName ${x509.subjectAltName}`)
      if (!(new Date(x509.validFrom) <= new Date() && new Date() < new Date(x509.validTo))) refused.push(`validity ${x509.validFrom} – ${x509.validTo}`)
      if (!/^[0-9A-F]{32}$/.test(x509.serialNumber)) refused.push(`serial ${x509.serialNumber}`)
    } catch (err) {
      refused.push((err as Error).message)
    }
  }
  expect(refused).toEqual([])
})
