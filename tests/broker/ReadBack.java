// An independent reader for the integration tests: Apache Kafka's own Java consumer reads a
// whole topic from the beginning and prints one line per record:
//   <partition> TAB <offset> TAB <key as hex, or -> TAB <value as hex> TAB <headers>
// where <headers> is `-` when the record has none, else `name=value` per header, joined by
// `,`, name and value both as hex (a null value as `-`).
// Usage: java -cp '<broker libs>/*:<dir of this class>' ReadBack <bootstrap> <topic> <expected> <timeout-ms>
// Stops when <expected> records were read or the timeout passed; with <expected> = -1, once
// every partition was read to the end offset it had when the reader started (all records,
// however many). Exit 0 either way; the caller compares what it got with what it expected.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ReadBack {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void hex(StringBuilder out, byte[] bytes) {
        if (bytes == null) {
            out.append('-');
            return;
        }
        for (byte b : bytes) {
            out.append(HEX[(b >> 4) & 0xf]).append(HEX[b & 0xf]);
        }
    }

    private static boolean atEnd(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            if (consumer.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        long expected = Long.parseLong(args[2]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[3]);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("enable.auto.commit", "false");
        props.put("max.partition.fetch.bytes", String.valueOf(16 * 1024 * 1024));
        props.put("fetch.max.bytes", String.valueOf(64 * 1024 * 1024));
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            while (partitions.isEmpty() && System.currentTimeMillis() < deadline) {
                List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(5));
                if (infos != null) {
                    for (PartitionInfo p : infos) {
                        partitions.add(new TopicPartition(topic, p.partition()));
                    }
                }
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends =
                expected < 0 ? consumer.endOffsets(partitions, Duration.ofSeconds(10)) : null;
            StringBuilder out = new StringBuilder();
            long read = 0;
            while ((ends != null ? !atEnd(consumer, ends) : read < expected)
                    && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    out.append(r.partition()).append('\t').append(r.offset()).append('\t');
                    hex(out, r.key());
                    out.append('\t');
                    hex(out, r.value());
                    out.append('\t');
                    boolean first = true;
                    for (Header h : r.headers()) {
                        if (!first) {
                            out.append(',');
                        }
                        first = false;
                        hex(out, h.key().getBytes(StandardCharsets.UTF_8));
                        out.append('=');
                        hex(out, h.value());
                    }
                    if (first) {
                        out.append('-');
                    }
                    out.append('\n');
                    read++;
                }
                if (out.length() > (1 << 20)) {
                    System.out.print(out);
                    out.setLength(0);
                }
            }
            System.out.print(out);
            System.out.flush();
        }
    }
}
