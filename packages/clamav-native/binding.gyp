{
  "targets": [
    {
      "target_name": "clamav_native",
      "sources": ["src/clamav_native.cc"],
      "cflags_cc": ["-std=c++17", "-O2"]
    }
  ]
}
