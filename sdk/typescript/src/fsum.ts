/**
 * The correctly rounded sum of doubles (Shewchuk's algorithm, as Python's
 * math.fsum), so that [1.1, 2.2, 3.3] sums to 6.6 rather than 6.6000000000000005.
 */
export function fsum(values: readonly number[]): number {
  const partials: number[] = [];
  let special = 0;
  for (let x of values) {
    if (!Number.isFinite(x)) {
      special += x;
      continue;
    }
    let kept = 0;
    for (let j = 0; j < partials.length; j++) {
      let y = partials[j] ?? 0;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[kept++] = lo;
      x = hi;
    }
    partials.length = kept;
    partials.push(x);
  }
  if (special !== 0 || Number.isNaN(special)) return special;
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n] ?? 0;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n] ?? 0;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  // Round half to even across the remaining partials, as math.fsum does.
  if (n > 0 && ((lo < 0 && (partials[n - 1] ?? 0) < 0) || (lo > 0 && (partials[n - 1] ?? 0) > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}
