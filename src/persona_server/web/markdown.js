// A small, safe Markdown subset for answers: paragraphs and line breaks, headings, lists, quotes, fenced and
// inline code, bold, italics and http(s) links. Everything becomes DOM nodes with textContent: model text is
// never parsed as HTML.

const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*|__[^_\n]+__)|(\*[^*\s][^*\n]*\*|_[^_\s][^_\n]*_)|(\[[^\]\n]+\]\([^)\s]+\))|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

/** A link element for `href` if it is http(s), else null (no javascript:, data:, relative tricks). */
export function safeLink(href, text) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const a = document.createElement("a");
  a.href = url.href;
  a.textContent = text || url.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function inline(parent, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    const [whole, code, strong, em, link, bare] = match;
    if (code) {
      const el = document.createElement("code");
      el.textContent = code.slice(1, -1);
      parent.append(el);
    } else if (strong) {
      const el = document.createElement("strong");
      inline(el, strong.slice(2, -2));
      parent.append(el);
    } else if (em) {
      const el = document.createElement("em");
      inline(el, em.slice(1, -1));
      parent.append(el);
    } else if (link) {
      const split = link.indexOf("](");
      const a = safeLink(link.slice(split + 2, -1), link.slice(1, split));
      parent.append(a || whole);
    } else if (bare) {
      parent.append(safeLink(bare) || bare);
    }
    last = match.index + whole.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function lines(parent, block) {
  block.split("\n").forEach((line, i) => {
    if (i) parent.append(document.createElement("br"));
    inline(parent, line);
  });
}

/** `text` rendered into a DocumentFragment. */
export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const rows = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < rows.length) {
    const row = rows[i];
    if (/^\s*```/.test(row)) {
      const body = [];
      for (i++; i < rows.length && !/^\s*```\s*$/.test(rows[i]); i++) body.push(rows[i]);
      i++; // the closing fence (or the end of an answer still streaming)
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = body.join("\n");
      pre.append(code);
      out.append(pre);
      continue;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(row);
    if (heading) {
      const el = document.createElement("h" + Math.min(heading[1].length + 2, 6));
      inline(el, heading[2]);
      out.append(el);
      i++;
      continue;
    }
    const bullet = /^\s*([-*+]|\d{1,3}[.)])\s+/;
    if (bullet.test(row)) {
      const ordered = /^\s*\d/.test(row);
      const list = document.createElement(ordered ? "ol" : "ul");
      for (; i < rows.length && bullet.test(rows[i]); i++) {
        const item = document.createElement("li");
        inline(item, rows[i].replace(bullet, ""));
        list.append(item);
      }
      out.append(list);
      continue;
    }
    if (/^\s*>/.test(row)) {
      const quote = document.createElement("blockquote");
      const body = [];
      for (; i < rows.length && /^\s*>/.test(rows[i]); i++) body.push(rows[i].replace(/^\s*>\s?/, ""));
      lines(quote, body.join("\n"));
      out.append(quote);
      continue;
    }
    if (!row.trim()) {
      i++;
      continue;
    }
    const para = [row]; // at least this row, whatever it starts with: the loop always moves on
    for (i++; i < rows.length && rows[i].trim() && !/^\s*(```|#{1,4}\s|[-*+]\s|\d{1,3}[.)]\s|>)/.test(rows[i]); i++) {
      para.push(rows[i]);
    }
    const p = document.createElement("p");
    lines(p, para.join("\n"));
    out.append(p);
  }
  return out;
}
