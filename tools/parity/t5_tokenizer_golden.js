// Writes tests/data/tokenizer/golden_t5.json: T5 v1.1 token ids from Hugging Face `tokenizers` (the Rust
// library ComfyUI's transformers runs, here through its Node binding) for a fixed prompt list plus seeded
// random strings built to hit the normalizer's corners (NFKC, combining marks, graphemes, added tokens).
//
// Two pipelines, both with the file's vocabulary, charsmap and added tokens:
//   transformers:   what transformers 5's T5Tokenizer builds (Precompiled normalizer only, WhitespaceSplit +
//                   Metaspace prepend_scheme "always");
//   tokenizer_json: the file's own pipeline (Precompiled, Strip right, Replace " {2,}", Metaspace "first").
// Ids include the end token "</s>" (the post-processor's).
//
// Usage (any machine with npm):  npm install --prefix /tmp/tok tokenizers@0.23.2
//   NODE_PATH=/tmp/tok/node_modules node tools/parity/t5_tokenizer_golden.js \
//       models/t5_tokenizer/tokenizer.json tests/data/tokenizer/golden_t5.json
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

const FIXED = [
  'a photo of a cat', 'Hello  world\tfoo\nbar', 'ｆｕｌｌ…', 'e\u0301 café', '', ' ', '<extra_id_0> </s>x', '  lead',
  'trail  ', 'a\u3000b', 'x\u00a0y', 'a\u2581b', 'tab\t\tx', '(masterpiece), best quality, 8k uhd', '日本語のテキスト',
  'emoji 🐱👍🏽', '\u200bzw', 'a\r\nb', 'x\uff21\u0301y', 'xa\u200dy', '\uff76\uff9e', 'ｶﾞ',
  'A photograph of an astronaut riding a horse on Mars, highly detailed, 4k', "don't stop", "C'est la vie!",
  'Straße ÆØÅ ĳ ﬁ ﬂ ①②③ ㍿ ℃ ™', '<pad><unk></s><extra_id_99><extra_id_9>', '<extra_id_1', '</s></s>', 'x</s>',
  'café\u0301', 'naïve résumé', 'Ελληνικά Русский עברית العربية हिन्दी ไทย 한국어', '\u0600a', 'a\u0903b',
  '\u1100\u1161', 'multiple     spaces   here', '\t\n\r\x0b\x0c', '\x00\x01ctrl', 'ab\u0301\u0302c', 'U+FFFD \ufffd',
  '𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕', '½ ¼ ¾ ⅓', 'x\u2163\u0301y', '\u00c5\u030a', 'Ａ\u0308', 'ℌ\u0301', 'ﾊﾟﾋﾟﾌﾟ',
  'x'.repeat(300), 'supercalifragilisticexpialidocious',
];
const POOL = Array.from('abcxyz ABC  \t\n.,!?\'"()[]{}:;-_/\\@#$%^&*+=~`|<>0123456789').concat([
  'é', 'ü', 'ß', 'ñ', '\u0301', '\u0308', '\u0327', '\u200d', '\u200c', '\u00a0', '\u3000', 'Ａ', 'ｂ', '１', '…', '™',
  'ﬁ', '①', 'ｶ', 'ﾞ', 'ﾟ', '日', '本', '中', '文', '한', '글', '🐱', '👍', '🏽', '\ufe0f', '\u2581', '<', '/s>', '</s>',
  '<pad>', '<extra_id_5>', '<unk>', 'ℌ', 'Ⅳ', 'ǅ', 'Ǆ', '\u0345', '\u0951', '\u093f', 'क', '\u094d', 'ㄱ', '\u1100',
  '\u1161', '\u11a8', '\r', '\x7f', '\u2028', '\ufeff', '\u00ad', 'ø', 'Ω', '\u2126', 'Å', 'ｧ', 'ｯ', 'ｰ',
]);

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function encodeAll(tokenizer, prompts) {
  const out = [];
  for (const p of prompts) out.push(Array.from((await tokenizer.encode(p)).getIds()));
  return out;
}

(async () => {
  const [file, outPath] = process.argv.slice(2);
  const text = fs.readFileSync(file, 'utf8');
  const spec = JSON.parse(text);
  const precompiled = spec.normalizer.normalizers.find((n) => n.type === 'Precompiled');
  spec.normalizer = precompiled;
  spec.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [{ type: 'WhitespaceSplit' },
                    { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }],
  };
  const random = mulberry32(19);
  const prompts = FIXED.slice();
  for (let i = 0; i < 600; ++i) {
    let s = '';
    const n = 1 + Math.floor(random() * 40);
    for (let k = 0; k < n; ++k) s += POOL[Math.floor(random() * POOL.length)];
    prompts.push(s);
  }
  const golden = {
    meta: { tokenizers: 'tokenizers@0.23.2 (npm, the Rust library)', source: file,
            note: 'ids include the end token; see tools/parity/t5_tokenizer_golden.js' },
    prompts,
    transformers: await encodeAll(Tokenizer.fromString(JSON.stringify(spec)), prompts),
    tokenizer_json: await encodeAll(Tokenizer.fromString(text), prompts),
  };
  fs.writeFileSync(outPath, JSON.stringify(golden) + '\n');
})();
