#!/usr/bin/env bash
# Makes the dbaudit webhook's serving certificate without cert-manager:
# a CA of its own and a certificate for the webhook Service's DNS names.
#
#   k8s/webhook-cert/make-cert.sh OUT_DIR [NAMESPACE] [DAYS]
#
# writes OUT_DIR/ca.crt, ca.key, tls.crt, tls.key and prints the two kubectl
# commands that install them (the Secret, and the caBundle the API server
# uses to verify the webhook). Keep ca.key offline; rerun before DAYS pass
# (the webhook re-reads a renewed Secret by itself).
set -euo pipefail
out="${1:?usage: make-cert.sh OUT_DIR [NAMESPACE] [DAYS]}"
ns="${2:-dbaudit}"
days="${3:-365}"
svc="dbaudit-webhook"
mkdir -p "$out"
cd "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -keyout ca.key -out ca.crt -subj "/CN=dbaudit webhook CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout tls.key -out tls.csr -subj "/CN=${svc}.${ns}.svc" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\n' \
  "$svc" "$svc" "$ns" "$svc" "$ns" "$svc" "$ns" > tls.ext
openssl x509 -req -sha256 -days "$days" -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -extfile tls.ext 2>/dev/null
rm -f tls.csr tls.ext ca.srl
chmod 644 ca.crt tls.crt
cat <<MSG
# Install (namespace ${ns}):
kubectl -n ${ns} create secret tls ${svc}-tls --cert=${out}/tls.crt --key=${out}/tls.key --dry-run=client -o yaml | kubectl apply -f -
kubectl patch mutatingwebhookconfiguration dbaudit-sidecar-injector --type=json \\
  -p '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"'"\$(base64 -w0 ${out}/ca.crt)"'"}]'
MSG
