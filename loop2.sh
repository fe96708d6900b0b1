B=/work/main/.build/debug
rm -rf spool out*.txt err*.txt spool.after*
for i in 1 2 3; do
  $B/batchman run m.json --input in.ndjson --spool spool --max-output-bytes 65536 > out$i.txt 2> err$i.txt &
  P=$!
  T=$((RANDOM % 13000 + 2000))
  while [ $(wc -l < out$i.txt) -lt $T ] && kill -0 $P 2>/dev/null; do sleep 0.01; done
  kill -9 $P; wait $P 2>/dev/null
  cp -r spool spool.after$i
  echo "run $i: $(wc -l < out$i.txt) results; $(grep -c . err$i.txt) log lines; $(grep replaying err$i.txt)"
  /work/main/.build/debug/batchman spool check spool | head -2
done
