#!/usr/bin/env bash
# Builds the demo's web image without internet, from Debian's busybox-static, with umoci and
# skopeo: docker.io/skiff/demo-web:v1, an OCI archive. The image serves /www with busybox
# httpd on port 8080 (/cgi-bin/whoami: the pod's name and the client's address).
#   scripts/demo-image.sh OUT.tar
set -euo pipefail
out=${1:?usage: scripts/demo-image.sh OUT.tar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:v1" >/dev/null
umoci unpack --image "$work/layout:v1" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in sh httpd ls cat echo sleep wget hostname ip ps env id nc tar stty tty rm touch mkdir nslookup grep; do
  ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
cat > "$root/www/index.html" <<'HTML'
<!doctype html>
<title>skiff demo</title>
<h1>Hello from a pod on skiff</h1>
<p>This page is served by busybox httpd in a real container.</p>
HTML
# /cgi-bin/whoami answers "<hostname> <client address>": which pod answered, and whether
# the client's source address arrived unchanged (no NAT between pods).
mkdir -p "$root/www/cgi-bin"
cat > "$root/www/cgi-bin/whoami" <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n%s %s\n' "$(hostname)" "$REMOTE_ADDR"
CGI
chmod 755 "$root/www/cgi-bin/whoami"
umoci repack --image "$work/layout:v1" "$work/bundle" >/dev/null
umoci config --image "$work/layout:v1" --config.env PATH=/bin \
  --config.entrypoint /bin/httpd --config.cmd=-f --config.cmd=-p --config.cmd=8080 \
  --config.cmd=-h --config.cmd=/www --config.exposedports 8080/tcp >/dev/null
rm -f "$out"
skopeo copy -q "oci:$work/layout:v1" "oci-archive:$out:docker.io/skiff/demo-web:v1"
