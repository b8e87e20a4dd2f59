# The handler of the custom runtime example: the event is $1, the reply goes to stdout.
handler() {
  echo "handling $1" >&2
  printf '{"success": true, "message": "hello from a shell bootstrap", "event": %s}\n' "$1"
}
