/**
 * The keys that appear more than once in one object of a JSON text.
 * JSON.parse keeps the last of duplicates silently, so log lines are
 * scanned as text: a duplicate `component` (pino child bindings) is found
 * here and nowhere else.
 */
export function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  const stack: (Set<string> | null)[] = []; // one key set per open object, null for an array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) dups.push(key);
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
      expectKey = false;
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectKey = false;
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return dups;
}
