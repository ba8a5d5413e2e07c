" Writes, for each line of the current buffer, the line and its highlighted
" tokens as Group[text], to the file named by g:flow_dump_output.
" Used by test.sh; run as: vim -N -u NONE -i NONE -es -c 'let g:flow_dump_output="out"' -S dump.vim FILE
set nocompatible
let &runtimepath = expand('<sfile>:p:h:h') . ',' . &runtimepath
filetype plugin on
syntax on
edit!
let s:out = []
for s:lnum in range(1, line('$'))
  let s:text = getline(s:lnum)
  let s:parts = []
  let s:current = ''
  let s:accumulated = ''
  for s:col in range(1, len(s:text) + 1)
    let s:name = s:col <= len(s:text) ? synIDattr(synID(s:lnum, s:col, 1), 'name') : '<end>'
    if s:name !=# s:current
      if s:current !=# '' && s:accumulated =~# '\S'
        call add(s:parts, substitute(s:current, '^flow', '', '') . '[' . trim(s:accumulated) . ']')
      endif
      let s:current = s:name
      let s:accumulated = ''
    endif
    let s:accumulated .= s:text[s:col - 1]
  endfor
  call add(s:out, '> ' . s:text)
  if !empty(s:parts)
    call add(s:out, '  ' . join(s:parts, ' '))
  endif
endfor
call add(s:out, 'filetype=' . &filetype . ' commentstring=' . &commentstring)
if v:errmsg !=# ''
  call add(s:out, 'error: ' . v:errmsg)
endif
call writefile(s:out, g:flow_dump_output)
qa!
