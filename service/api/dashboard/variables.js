// Variable sets for "From prompt": read from a JSON array or a CSV with a header row, and checked.

const TASKS = new Set(["extract", "summarize", "classify"]);

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        field += '"';
        index++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"' && field === "") quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[index + 1] === "\n") index++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += char;
  }
  if (quoted) throw new Error("A quoted CSV field is not closed.");
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((cells) => cells.some((cell) => cell !== ""));
}

/** The variable sets in `text`: `{sets}` or `{error}` when the text cannot be read at all. */
export function readVariableSets(text) {
  const trimmed = text.trim();
  if (!trimmed) return { sets: [] };
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) {
    try {
      const parsed = JSON.parse(trimmed);
      if (!Array.isArray(parsed))
        return { error: "The JSON must be an array of objects, one per variable set." };
      return { sets: parsed, format: "json" };
    } catch (error) {
      return { error: `Not valid JSON: ${error.message}` };
    }
  }
  let rows;
  try {
    rows = parseCsv(trimmed);
  } catch (error) {
    return { error: error.message };
  }
  const [header, ...records] = rows;
  const names = header.map((name) => name.trim());
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate !== undefined) return { error: `The CSV header names '${duplicate}' twice.` };
  if (names.some((name) => !name)) return { error: "Every column of the CSV header needs a name." };
  const faults = [];
  const sets = records.map((cells, index) => {
    if (cells.length !== names.length) {
      faults.push(`row ${index + 1} has ${cells.length} cells; the header has ${names.length}`);
    }
    return Object.fromEntries(names.map((name, column) => [name, cells[column] ?? ""]));
  });
  if (faults.length) return { error: `CSV: ${faults.join("; ")}.` };
  return { sets, format: "csv" };
}

function kind(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "boolean" ? "a boolean" : `of type ${typeof value}`;
}

/** One check per set: `faults` stop the submission, `notes` do not (unused variables). */
export function checkVariableSet(set, placeholders, model) {
  if (set === null || typeof set !== "object" || Array.isArray(set)) {
    return { faults: [`must be an object of variables, not ${kind(set)}`], notes: [] };
  }
  const faults = [];
  const notes = [];
  for (const name of placeholders) {
    if (!(name in set)) faults.push(`missing variable '${name}'`);
  }
  for (const [name, value] of Object.entries(set)) {
    const usable =
      typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
    if (!usable)
      faults.push(`variables.${name} is ${kind(value)}; a variable must be a string or a number`);
  }
  // A placeholder named text is reported missing above already.
  if (TASKS.has(model) && !("text" in set) && !placeholders.includes("text")) {
    faults.push(`the ${model} task reads its text from variables.text, which is missing`);
  }
  const used = new Set(placeholders);
  if (TASKS.has(model)) used.add("text");
  const unused = Object.keys(set).filter((name) => !used.has(name));
  if (unused.length) notes.push(`not used by the prompt: ${unused.join(", ")}`);
  return { faults, notes };
}

/** The batch line the service makes of a variable set (as POST /v1/batches/from_prompt does). */
export function generatedLine(index, slug, version, model, set) {
  const body = { model, prompt_slug: slug };
  if (version) body.prompt_version = version;
  body.variables = set;
  return { custom_id: `row-${index + 1}`, method: "POST", url: "/v1/chat/completions", body };
}
