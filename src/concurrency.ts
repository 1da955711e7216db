/**
 * Runs `work` over `items` with at most `concurrency` of them under way at once, each started in
 * the list's order; no new item is started once `goOn` says no (a deadline).
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
  goOn: () => boolean = () => true,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && goOn()) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, items.length)) }, worker));
}
