/**
 * Discord's request-body limits for messages (create/edit, interaction responses, webhooks) and modals.
 * A violation is reported the way Discord does: HTTP 400 `{code: 50035, message: 'Invalid Form Body',
 * errors}` where `errors` mirrors the body's shape down to the offending field, which holds
 * `{_errors: [{code, message}]}`, e.g. `{embeds: {0: {fields: {0: {value: {_errors: [...]}}}}}}`.
 * Lengths are counted in Unicode code points, as Discord does.
 */

export interface FormError {
  code: string;
  message: string;
}

export interface ErrorTree {
  _errors?: FormError[];
  [key: string]: ErrorTree | FormError[] | undefined;
}

type Json = Record<string, unknown>;
type Path = (string | number)[];

export function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function textLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export const LIMITS = {
  content: 2000,
  embeds: 10,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footerText: 2048,
  authorName: 256,
  embedTotal: 6000,
  actionRows: 5,
  rowButtons: 5,
  buttonLabel: 80,
  customId: 100,
  selectOptions: 25,
  selectPlaceholder: 150,
  optionText: 100,
  modalTitle: 45,
  modalRows: 5,
  textInputLabel: 45,
  textInputValue: 4000,
  textInputPlaceholder: 100,
  labelDescription: 100,
  componentsV2Total: 40,
} as const;

/** Message flag IS_COMPONENTS_V2 (1 << 15): top-level layout components instead of content/embeds. */
export const IS_COMPONENTS_V2 = 1 << 15;

export class FormErrors {
  readonly tree: ErrorTree = {};
  count = 0;

  add(path: Path, code: string, message: string): void {
    let node: ErrorTree = this.tree;
    for (const key of path) {
      const k = String(key);
      const next = node[k];
      if (isObj(next)) {
        node = next as ErrorTree;
      } else {
        const created: ErrorTree = {};
        node[k] = created;
        node = created;
      }
    }
    if (!node._errors) node._errors = [];
    node._errors.push({ code, message });
    this.count++;
  }

  maxLength(path: Path, value: unknown, max: number): void {
    if (typeof value === 'string' && textLength(value) > max) {
      this.add(path, 'BASE_TYPE_MAX_LENGTH', `Must be ${max} or fewer in length.`);
    }
  }

  required(path: Path, value: unknown): boolean {
    if (value === undefined || value === null || value === '') {
      this.add(path, 'BASE_TYPE_REQUIRED', 'This field is required');
      return false;
    }
    return true;
  }

  string(path: Path, value: unknown): boolean {
    if (value === undefined || value === null) return true;
    if (typeof value !== 'string') {
      this.add(path, 'STRING_TYPE_CONVERT', 'Could not interpret the value as string.');
      return false;
    }
    return true;
  }

  arrayLength(path: Path, value: unknown, min: number, max: number): value is unknown[] {
    if (value === undefined || value === null) return false;
    if (!Array.isArray(value)) {
      this.add(path, 'BASE_TYPE_ARRAY', 'Must be an array.');
      return false;
    }
    if (value.length < min || value.length > max) {
      this.add(
        path,
        'BASE_TYPE_BAD_LENGTH',
        min === 0 ? `Must be ${max} or fewer in length.` : `Must be between ${min} and ${max} in length.`,
      );
    }
    return true;
  }
}

function embedText(v: unknown): number {
  return typeof v === 'string' ? textLength(v) : 0;
}

function validateEmbeds(errors: FormErrors, embeds: unknown, base: Path): void {
  if (!errors.arrayLength([...base, 'embeds'], embeds, 0, LIMITS.embeds)) return;
  let total = 0;
  embeds.forEach((embed, i) => {
    const p = [...base, 'embeds', i];
    if (!isObj(embed)) {
      errors.add(p, 'MODEL_TYPE_CONVERT', 'Only dictionaries may be used in a ModelType');
      return;
    }
    errors.maxLength([...p, 'title'], embed.title, LIMITS.embedTitle);
    errors.maxLength([...p, 'description'], embed.description, LIMITS.embedDescription);
    total += embedText(embed.title) + embedText(embed.description);
    if (isObj(embed.footer)) {
      errors.maxLength([...p, 'footer', 'text'], embed.footer.text, LIMITS.footerText);
      total += embedText(embed.footer.text);
    }
    if (isObj(embed.author)) {
      errors.maxLength([...p, 'author', 'name'], embed.author.name, LIMITS.authorName);
      total += embedText(embed.author.name);
    }
    if (errors.arrayLength([...p, 'fields'], embed.fields, 0, LIMITS.embedFields)) {
      embed.fields.forEach((field, j) => {
        const fp = [...p, 'fields', j];
        if (!isObj(field)) {
          errors.add(fp, 'MODEL_TYPE_CONVERT', 'Only dictionaries may be used in a ModelType');
          return;
        }
        if (errors.required([...fp, 'name'], field.name))
          errors.maxLength([...fp, 'name'], field.name, LIMITS.fieldName);
        if (errors.required([...fp, 'value'], field.value))
          errors.maxLength([...fp, 'value'], field.value, LIMITS.fieldValue);
        total += embedText(field.name) + embedText(field.value);
      });
    }
  });
  if (total > LIMITS.embedTotal) {
    errors.add(
      [...base, 'embeds'],
      'MAX_EMBED_SIZE_EXCEEDED',
      `Embed size exceeds maximum size of ${LIMITS.embedTotal}`,
    );
  }
}

function customIdCheck(errors: FormErrors, path: Path, value: unknown, seen: Set<string>): void {
  if (!errors.required(path, value) || !errors.string(path, value)) return;
  errors.maxLength(path, value, LIMITS.customId);
  const id = value as string;
  if (seen.has(id))
    errors.add(path, 'COMPONENT_CUSTOM_ID_DUPLICATED', 'Component custom id cannot be duplicated');
  seen.add(id);
}

const SELECT_TYPES = new Set([3, 5, 6, 7, 8]);

function validateButton(errors: FormErrors, c: Json, p: Path, seen: Set<string>): void {
  const style = c.style;
  if (typeof style !== 'number' || style < 1 || style > 6) {
    errors.add([...p, 'style'], 'BASE_TYPE_CHOICES', 'Value must be one of {1, 2, 3, 4, 5, 6}.');
    return;
  }
  errors.maxLength([...p, 'label'], c.label, LIMITS.buttonLabel);
  if (style === 5) {
    errors.required([...p, 'url'], c.url);
    if (c.custom_id !== undefined) {
      errors.add(
        [...p, 'custom_id'],
        'BUTTON_COMPONENT_URL_CUSTOM_ID_EXCLUSIVE',
        'A link button cannot have a custom id',
      );
    }
  } else if (style === 6) {
    errors.required([...p, 'sku_id'], c.sku_id);
  } else {
    customIdCheck(errors, [...p, 'custom_id'], c.custom_id, seen);
  }
  if (style !== 6 && (c.label === undefined || c.label === '') && c.emoji === undefined) {
    errors.add(p, 'BUTTON_COMPONENT_INVALID', 'A button must have a label or an emoji');
  }
}

function validateSelect(errors: FormErrors, c: Json, p: Path, seen: Set<string>): void {
  customIdCheck(errors, [...p, 'custom_id'], c.custom_id, seen);
  errors.maxLength([...p, 'placeholder'], c.placeholder, LIMITS.selectPlaceholder);
  if (c.type === 3 && errors.arrayLength([...p, 'options'], c.options, 1, LIMITS.selectOptions)) {
    (c.options as unknown[]).forEach((o, k) => {
      if (!isObj(o)) return;
      errors.maxLength([...p, 'options', k, 'label'], o.label, LIMITS.optionText);
      errors.maxLength([...p, 'options', k, 'value'], o.value, LIMITS.optionText);
      errors.maxLength([...p, 'options', k, 'description'], o.description, LIMITS.optionText);
    });
  }
}

function validateActionRowComponents(errors: FormErrors, components: unknown, base: Path): void {
  if (!errors.arrayLength([...base, 'components'], components, 0, LIMITS.actionRows)) return;
  const seen = new Set<string>();
  components.forEach((row, i) => {
    const p = [...base, 'components', i];
    if (!isObj(row) || row.type !== 1) {
      errors.add([...p, 'type'], 'UNION_TYPE_CHOICES', 'Value of field "type" must be one of (1,).');
      return;
    }
    if (!errors.arrayLength([...p, 'components'], row.components, 1, LIMITS.rowButtons)) {
      errors.required([...p, 'components'], row.components);
      return;
    }
    const items = row.components as unknown[];
    items.forEach((c, j) => {
      const cp = [...p, 'components', j];
      if (!isObj(c)) return;
      if (c.type === 2) validateButton(errors, c, cp, seen);
      else if (typeof c.type === 'number' && SELECT_TYPES.has(c.type)) {
        validateSelect(errors, c, cp, seen);
        if (items.length > 1) {
          errors.add(
            cp,
            'COMPONENT_LAYOUT_WIDTH_EXCEEDED',
            'The specified component exceeds the maximum width',
          );
        }
      } else {
        errors.add(
          [...cp, 'type'],
          'UNION_TYPE_CHOICES',
          'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
        );
      }
    });
  });
}

function countComponents(components: unknown): number {
  if (!Array.isArray(components)) return 0;
  let n = 0;
  for (const c of components) {
    if (!isObj(c)) continue;
    n++;
    n += countComponents(c.components);
    if (isObj(c.accessory)) n++;
    if (isObj(c.component)) n++;
  }
  return n;
}

export interface MessageCheckOptions {
  /** Creating (not editing): an empty message is refused with 50006. */
  create: boolean;
  /** Path prefix for nested bodies, e.g. ['data'] for interaction callbacks. */
  base?: Path;
  /** Flags the message already has (for edits of a Components V2 message). */
  existingFlags?: number;
}

export type Refusal = { status: number; body: Json };

function invalidFormBody(errors: FormErrors): Refusal {
  return { status: 400, body: { code: 50035, message: 'Invalid Form Body', errors: errors.tree } };
}

/** Checks a message body against Discord's limits; returns the 400 Discord would answer, or null. */
export function checkMessageBody(body: Json, opts: MessageCheckOptions): Refusal | null {
  const base = opts.base ?? [];
  const errors = new FormErrors();
  const flags = (typeof body.flags === 'number' ? body.flags : 0) | (opts.existingFlags ?? 0);
  if (errors.string([...base, 'content'], body.content)) {
    errors.maxLength([...base, 'content'], body.content, LIMITS.content);
  }
  if (flags & IS_COMPONENTS_V2) {
    if (typeof body.content === 'string' && body.content !== '') {
      errors.add(
        [...base, 'content'],
        'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2',
        'content cannot be used',
      );
    }
    if (Array.isArray(body.embeds) && body.embeds.length > 0) {
      errors.add(
        [...base, 'embeds'],
        'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2',
        'embeds cannot be used',
      );
    }
    if (countComponents(body.components) > LIMITS.componentsV2Total) {
      errors.add(
        [...base, 'components'],
        'BASE_TYPE_BAD_LENGTH',
        `Must be ${LIMITS.componentsV2Total} or fewer in length.`,
      );
    }
  } else {
    validateEmbeds(errors, body.embeds, base);
    validateActionRowComponents(errors, body.components, base);
  }
  if (errors.count > 0) return invalidFormBody(errors);
  if (opts.create) {
    const nonEmpty =
      (typeof body.content === 'string' && body.content.trim() !== '') ||
      (Array.isArray(body.embeds) && body.embeds.length > 0) ||
      (Array.isArray(body.components) && body.components.length > 0) ||
      (Array.isArray(body.sticker_ids) && body.sticker_ids.length > 0) ||
      (Array.isArray(body.attachments) && body.attachments.length > 0) ||
      isObj(body.poll);
    if (!nonEmpty) return { status: 400, body: { code: 50006, message: 'Cannot send an empty message' } };
  }
  return null;
}

function validateTextInput(
  errors: FormErrors,
  c: Json,
  p: Path,
  seen: Set<string>,
  needsLabel: boolean,
): void {
  customIdCheck(errors, [...p, 'custom_id'], c.custom_id, seen);
  if (c.style !== 1 && c.style !== 2) {
    errors.add([...p, 'style'], 'BASE_TYPE_CHOICES', 'Value must be one of {1, 2}.');
  }
  if (needsLabel) {
    if (errors.required([...p, 'label'], c.label))
      errors.maxLength([...p, 'label'], c.label, LIMITS.textInputLabel);
  } else {
    errors.maxLength([...p, 'label'], c.label, LIMITS.textInputLabel);
  }
  errors.maxLength([...p, 'value'], c.value, LIMITS.textInputValue);
  errors.maxLength([...p, 'placeholder'], c.placeholder, LIMITS.textInputPlaceholder);
  for (const [key, min] of [
    ['min_length', 0],
    ['max_length', 1],
  ] as const) {
    const v = c[key];
    if (v !== undefined && v !== null && (typeof v !== 'number' || v < min || v > LIMITS.textInputValue)) {
      errors.add(
        [...p, key],
        'NUMBER_TYPE_MAX',
        `int value should be between ${min} and ${LIMITS.textInputValue}.`,
      );
    }
  }
}

/** Checks MODAL callback data (`{custom_id, title, components}`); returns the 400 Discord would answer, or null. */
export function checkModalData(data: unknown, base: Path = ['data']): Refusal | null {
  const errors = new FormErrors();
  if (!isObj(data)) {
    errors.add(base, 'BASE_TYPE_REQUIRED', 'This field is required');
    return invalidFormBody(errors);
  }
  const seen = new Set<string>();
  if (errors.required([...base, 'custom_id'], data.custom_id)) {
    errors.maxLength([...base, 'custom_id'], data.custom_id, LIMITS.customId);
  }
  if (errors.required([...base, 'title'], data.title)) {
    errors.maxLength([...base, 'title'], data.title, LIMITS.modalTitle);
  }
  if (!errors.arrayLength([...base, 'components'], data.components, 1, LIMITS.modalRows)) {
    errors.required([...base, 'components'], data.components);
    return invalidFormBody(errors);
  }
  (data.components as unknown[]).forEach((top, i) => {
    const p = [...base, 'components', i];
    if (!isObj(top)) return;
    if (top.type === 1) {
      if (!errors.arrayLength([...p, 'components'], top.components, 1, 1)) {
        errors.required([...p, 'components'], top.components);
        return;
      }
      const input = (top.components as unknown[])[0];
      if (!isObj(input) || input.type !== 4) {
        errors.add(
          [...p, 'components', 0, 'type'],
          'UNION_TYPE_CHOICES',
          'Value of field "type" must be one of (4,).',
        );
        return;
      }
      validateTextInput(errors, input, [...p, 'components', 0], seen, true);
    } else if (top.type === 18) {
      if (errors.required([...p, 'label'], top.label))
        errors.maxLength([...p, 'label'], top.label, LIMITS.textInputLabel);
      errors.maxLength([...p, 'description'], top.description, LIMITS.labelDescription);
      const inner = top.component;
      if (!isObj(inner)) {
        errors.add([...p, 'component'], 'BASE_TYPE_REQUIRED', 'This field is required');
      } else if (inner.type === 4) {
        validateTextInput(errors, inner, [...p, 'component'], seen, false);
      } else if (typeof inner.type === 'number' && SELECT_TYPES.has(inner.type)) {
        validateSelect(errors, inner, [...p, 'component'], seen);
      }
    } else if (top.type === 10) {
      errors.maxLength([...p, 'content'], top.content, LIMITS.textInputValue);
    } else {
      errors.add([...p, 'type'], 'UNION_TYPE_CHOICES', 'Value of field "type" must be one of (1, 10, 18).');
    }
  });
  return errors.count > 0 ? invalidFormBody(errors) : null;
}
