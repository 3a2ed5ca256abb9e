-- book.lua — the pandoc filter tools/book.sh renders every page with.
--
-- 1. The page's first level-1 heading ("# 05 The forward process") becomes
--    its title: it leaves the body, so it is not shown twice and the table of
--    contents lists only the sections under it.
-- 2. Links to other pages of the book (05_schedule.md, index.md#glossary)
--    point at the rendered .html instead.

function Link(el)
  local page, rest = el.target:match('^%.?/?([%w_%-]+)%.md(#?.*)$')
  if page and (rest == '' or rest:sub(1, 1) == '#') then
    el.target = page .. '.html' .. rest
  end
  return el
end

function Pandoc(doc)
  if doc.meta.title then return doc end
  for i, block in ipairs(doc.blocks) do
    if block.t == 'Header' and block.level == 1 then
      doc.meta.title = pandoc.MetaInlines(block.content)
      table.remove(doc.blocks, i)
      break
    end
  end
  return doc
end
