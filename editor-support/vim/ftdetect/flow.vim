" Weir Flow rule files (*.flow).
autocmd BufNewFile,BufRead *.flow setfiletype flow
