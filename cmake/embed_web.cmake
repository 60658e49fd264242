# Turns the chat page's files (web/) into one C++ source of byte arrays, each with its content
# type, a gzip copy and an ETag, so `qnext serve` carries its page inside the binary.
#   cmake -DWEB_DIR=<web/> -DOUT=<file.cpp> -DGZIP=<gzip> -DWORK=<scratch dir> -P embed_web.cmake
# `gzip -9 -n` leaves out the name and time stamp: the same files always give the same bytes.
cmake_minimum_required(VERSION 3.20)
foreach(v WEB_DIR OUT GZIP WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "embed_web.cmake: -D${v}=... is required")
  endif()
endforeach()

# A file type the table does not know fails the build rather than going out with a guessed type.
function(content_type file out)
  get_filename_component(ext "${file}" LAST_EXT)
  string(TOLOWER "${ext}" ext)
  if(ext STREQUAL ".html")
    set(t "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js" OR ext STREQUAL ".mjs")
    set(t "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(t "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(t "image/svg+xml")
  elseif(ext STREQUAL ".png")
    set(t "image/png")
  elseif(ext STREQUAL ".json")
    set(t "application/json")
  elseif(ext STREQUAL ".txt")
    set(t "text/plain; charset=utf-8")
  else()
    message(FATAL_ERROR "embed_web.cmake: no content type for '${file}' (add its extension here)")
  endif()
  set(${out} "${t}" PARENT_SCOPE)
endfunction()

# `name` as a C array of the bytes of `file`, 24 to a line, with a trailing 0 so that an empty
# file still makes a valid array (the size is kept apart).
function(byte_array file name out)
  file(READ "${file}" hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR bytes "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
  string(REGEX REPLACE "((0x..,){24})" "\\1\n" body "${body}")
  set(${out} "const unsigned char ${name}[] = {\n${body}0x00};\n" PARENT_SCOPE)
  set(${out}_size ${bytes} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE files RELATIVE "${WEB_DIR}" "${WEB_DIR}/*")
list(SORT files)
file(MAKE_DIRECTORY "${WORK}")
set(arrays "")
set(table "")
set(i 0)
foreach(rel ${files})
  if(rel MATCHES "(^|/)\\." OR rel MATCHES "~$")
    continue()  # editor and dot files
  endif()
  set(src "${WEB_DIR}/${rel}")
  content_type("${rel}" type)
  set(gz "${WORK}/${i}.gz")
  execute_process(COMMAND "${GZIP}" -9 -n -c "${src}" OUTPUT_FILE "${gz}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "embed_web.cmake: ${GZIP} failed on ${src} (${rc})")
  endif()
  byte_array("${src}" "raw${i}" raw)
  byte_array("${gz}" "gz${i}" zipped)
  file(SHA256 "${src}" sha)
  string(SUBSTRING "${sha}" 0 20 tag)
  string(APPEND arrays "${raw}${zipped}")
  string(APPEND table "    {\"/${rel}\", \"${type}\", \"${tag}\", raw${i}, ${raw_size}, gz${i}, ${zipped_size}},\n")
  math(EXPR i "${i} + 1")
endforeach()
if(i EQUAL 0)
  message(FATAL_ERROR "embed_web.cmake: no files in ${WEB_DIR}")
endif()

set(text "// Generated from web/ by cmake/embed_web.cmake at build time: do not edit.
#include \"server/web_assets.h\"

namespace qnext::server {
namespace {
${arrays}}  // namespace

const WebAssetData kWebAssetData[] = {
${table}};
const size_t kWebAssetCount = ${i};

}  // namespace qnext::server
")
file(WRITE "${OUT}" "${text}")
