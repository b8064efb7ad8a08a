{
  "targets": [
    {
      "target_name": "yara_native",
      "sources": ["src/yara_native.cc"],
      "cflags_cc": ["-std=c++17", "-O2"],
      "libraries": ["-lyara"]
    }
  ]
}
