// What one page hands to another when it navigates (kept in memory: SQL text may hold data
// that does not belong in a URL).

/** SQL the editor or the live view opens with next. */
export const handoff: { sql?: string; live?: string } = {};

/**
 * Rows a flush started from the console is expected to write (the table's hot rows just
 * before it started), so the jobs page can show its progress as a fraction. The server
 * counts what a job has done, not what it will do.
 */
export const jobTotals = new Map<string, number>();

export function go(route: string): void {
  location.hash = `#/${route}`;
}
