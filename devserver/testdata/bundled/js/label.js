export function label(n) {
  return "version " + n;
}
