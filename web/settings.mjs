// The sampling settings: a field per request parameter, blank meaning the model's default (from
// generation_config.json, via GET /props). Only values the user typed are stored; requestFields()
// gives what goes into each request.
import { $, el } from './dom.mjs';

// key: the request field; min/max: the server's own ranges; optional: no default, left out when blank.
const FIELDS = [
  { key: 'temperature', label: 'Temperature', min: 0, max: 100, step: 0.05 },
  { key: 'top_p', label: 'Top p', min: 0, max: 1, step: 0.05, openMin: true },
  { key: 'top_k', label: 'Top k', min: 0, max: 1_000_000, step: 1, int: true, hint: '0: off' },
  { key: 'min_p', label: 'Min p', min: 0, max: 1, step: 0.01 },
  { key: 'presence_penalty', label: 'Presence penalty', min: -2, max: 2, step: 0.1 },
  { key: 'max_tokens', label: 'Max tokens', min: 1, max: 10_000_000, step: 1, int: true, optional: true, hint: 'blank: until the context is full' },
  { key: 'seed', label: 'Seed', min: 0, max: Number.MAX_SAFE_INTEGER, step: 1, int: true, optional: true, hint: 'blank: random' },
];

export class Settings {
  constructor(overrides, onChange) {
    this.overrides = { ...overrides };
    this.defaults = {};
    this.thinking = { switchable: false, on_by_default: false };
    this.onChange = onChange;
    this.inputs = {};
    this.build();
  }

  build() {
    const grid = $('#sampling-fields');
    for (const f of FIELDS) {
      const id = `set-${f.key.replace(/_/g, '-')}`;
      const input = el('input', {
        id, type: 'number', inputmode: f.int ? 'numeric' : 'decimal', step: f.step, min: f.min, max: f.max,
        'aria-describedby': `${id}-hint`,
      });
      const hint = el('span', { id: `${id}-hint`, class: 'hint muted', text: f.hint ?? '' });
      input.addEventListener('change', () => this.read(f, input));
      this.inputs[f.key] = { input, hint, field: f };
      grid.append(el('div', { class: 'field' }, el('label', { for: id, text: f.label }), input, hint));
    }
    $('#set-thinking').addEventListener('change', (e) => {
      this.overrides.enable_thinking = e.target.checked;
      this.onChange(this.overrides);
    });
    $('#reset-settings').addEventListener('click', () => {
      this.overrides = {};
      this.show();
      this.onChange(this.overrides);
    });
  }

  read(f, input) {
    const raw = input.value.trim();
    const v = Number(raw);
    const ok = raw === '' || (Number.isFinite(v) && v >= f.min && v <= f.max && !(f.openMin && v === f.min) &&
                              (!f.int || Number.isInteger(v)));
    input.setAttribute('aria-invalid', ok ? 'false' : 'true');
    const { hint } = this.inputs[f.key];
    if (!ok) {
      hint.textContent = `${f.int ? 'a whole number' : 'a number'} ${f.openMin ? 'above' : 'from'} ${f.min} to ${f.max}`;
      hint.classList.add('error');
      return;
    }
    hint.classList.remove('error');
    if (raw === '') delete this.overrides[f.key];
    else this.overrides[f.key] = v;
    this.show();
    this.onChange(this.overrides);
  }

  // The server's answer to GET /props.
  setModel(props) {
    this.defaults = props.default_sampling ?? {};
    this.thinking = props.thinking ?? this.thinking;
    this.show();
  }

  // Fills the form: the user's values, the model's defaults as placeholders.
  show() {
    for (const { input, hint, field } of Object.values(this.inputs)) {
      const v = this.overrides[field.key];
      if (document.activeElement !== input || v !== undefined) input.value = v === undefined ? '' : String(v);
      const d = this.defaults[field.key];
      input.placeholder = d === undefined ? '' : String(d);
      input.setAttribute('aria-invalid', 'false');
      hint.classList.remove('error');
      hint.textContent = field.optional ? field.hint : d === undefined ? (field.hint ?? '') : `model default ${d}`;
    }
    $('#thinking-row').hidden = !this.thinking.switchable;
    $('#set-thinking').checked = this.overrides.enable_thinking ?? this.thinking.on_by_default;
  }

  // The request's sampling fields: the user's values over the model's defaults.
  requestFields() {
    const out = {};
    for (const f of FIELDS) {
      const v = this.overrides[f.key] ?? (f.optional ? undefined : this.defaults[f.key]);
      if (v !== undefined) out[f.key] = v;
    }
    if (this.thinking.switchable)
      out.chat_template_kwargs = { enable_thinking: this.overrides.enable_thinking ?? this.thinking.on_by_default };
    return out;
  }
}
