package seeds

// The tables below are the vocabulary the generator draws from. Weights are
// rough shares, tuned so the demo looks like a Thái Nguyên market rather than
// a uniform random one; none of them is a statistic to quote.

const province = "Thái Nguyên"

// realMarket is one of the province's real markets. The merchant counts are
// invented but ordered by size as the demo story needs: Chợ Thái, the
// provincial market, is the biggest, and Chợ Đại Từ (the market the pilot
// walks through) has about 400 stalls.
type realMarket struct {
	name      string // without the "Chợ " prefix; the code is derived from it
	ward      string
	merchants int
}

var realMarkets = []realMarket{
	{"Thái", "Phường Hoàng Văn Thụ", 820},
	{"Đồng Quang", "Phường Đồng Quang", 360},
	{"Đồng Quang 2", "Phường Đồng Quang", 210},
	{"Đại Từ", "Thị trấn Hùng Sơn", 400},
	{"Chu", "Thị trấn Chợ Chu", 280},
	{"La Bằng", "Xã La Bằng", 60},
	{"Đu", "Thị trấn Đu", 240},
	{"Đán", "Phường Quan Triều", 150},
	{"Tân Khánh", "Xã Tân Khánh", 90},
	{"Quang Vinh", "Phường Quang Vinh", 130},
	{"Quan Triều", "Phường Quan Triều", 170},
	{"Ba Hàng", "Phường Ba Hàng", 310},
	{"Phúc Thuận", "Phường Phúc Thuận", 70},
	{"Sư Phạm", "Phường Quang Trung", 120},
	{"Núi Voi", "Phường Đồng Bẩm", 80},
	{"Quyết Thắng", "Phường Quyết Thắng", 110},
	{"Chùa Hang", "Phường Chùa Hang", 200},
	{"Tân Long", "Phường Tân Long", 140},
	{"Tân Đức", "Xã Tân Đức", 75},
	{"Úc Sơn", "Thị trấn Hương Sơn", 210},
	{"Trung Hội", "Xã Trung Hội", 65},
}

// syntheticWards gives the made-up markets a plausible address. The names
// are communes and wards of the province, but no real market is implied.
var syntheticWards = []string{
	"Xã Hà Châu", "Xã Kha Sơn", "Xã Điềm Thụy", "Xã Lương Phú", "Xã Bảo Cường",
	"Xã Phượng Tiến", "Xã Yên Trạch", "Xã Hợp Thành", "Xã Phấn Mễ", "Xã Vô Tranh",
	"Xã Văn Lăng", "Xã Minh Lập", "Xã Hóa Thượng", "Xã Cù Vân", "Xã Hà Thượng",
	"Xã Phú Lạc", "Xã Quân Chu", "Xã Ký Phú", "Xã Vạn Phú", "Xã Phú Thịnh",
	"Xã Tân Thái", "Xã Phúc Lương", "Xã Lục Ba", "Xã Thần Sa", "Xã La Hiên",
	"Xã Tràng Xá", "Xã Dân Tiến", "Xã Phú Thượng", "Xã Nghinh Tường", "Xã Sảng Mộc",
	"Xã Phú Đình", "Xã Bình Yên", "Xã Điềm Mặc", "Xã Kim Phượng", "Xã Yên Lạc",
	"Phường Tích Lương", "Phường Gia Sàng", "Phường Phan Đình Phùng", "Phường Túc Duyên",
	"Phường Cam Giá", "Phường Trung Thành", "Phường Bãi Bông", "Phường Đắc Sơn",
	"Phường Hồng Tiến", "Phường Lương Sơn", "Phường Thịnh Đán", "Phường Tân Thịnh",
}

// category is a kind of goods. Stalls of one category share a zone letter,
// as market halls are laid out by trade, and its median ticket drives the
// amounts its customers pay.
type category struct {
	zone   byte // stall row letter; I and O are skipped, read as 1 and 0 on signs
	weight int  // share of stalls
	median int  // median ticket in VND
	goods  []string
}

var categories = []category{
	{'A', 22, 20_000, []string{"Hàng rau", "Rau sạch", "Rau củ quả", "Đậu phụ"}},
	{'B', 14, 60_000, []string{"Thịt lợn", "Thịt bò", "Gà ta", "Gà vịt"}},
	{'C', 8, 45_000, []string{"Hàng cá", "Cá đồng", "Tôm cua ốc"}},
	{'D', 10, 30_000, []string{"Hoa quả", "Trái cây"}},
	{'E', 8, 40_000, []string{"Gạo ngon", "Hàng khô", "Đỗ lạc vừng"}},
	{'F', 8, 110_000, []string{"Quần áo", "Giày dép", "Vải vóc", "Quần áo trẻ em"}},
	{'G', 10, 25_000, []string{"Tạp hóa", "Gia vị", "Bánh kẹo"}},
	{'H', 12, 25_000, []string{"Bún phở", "Bánh cuốn", "Bún chả", "Xôi", "Nước mía"}},
	{'K', 5, 80_000, []string{"Chè Tân Cương", "Chè Thái"}},
	{'L', 3, 50_000, []string{"Đồ gia dụng", "Hoa tươi", "Đồ nhựa"}},
}

type weighted struct {
	v string
	w int
}

// Tày and Nùng family names (Ma, Nông, Hà, Lục, Triệu) appear because the
// uplands of the province are home to them; a list of only Kinh names would
// look wrong to a local reviewer.
var familyNames = []weighted{
	{"Nguyễn", 32}, {"Trần", 10}, {"Lê", 8}, {"Phạm", 6}, {"Hoàng", 6},
	{"Dương", 4}, {"Vũ", 4}, {"Đỗ", 3}, {"Ngô", 3}, {"Đặng", 3}, {"Bùi", 3},
	{"Đào", 2}, {"Lương", 2}, {"Ma", 2}, {"Nông", 2}, {"Hà", 2}, {"Đinh", 2},
	{"Phan", 2}, {"Lý", 1}, {"Triệu", 1}, {"Trịnh", 1}, {"Lục", 1}, {"Tô", 1},
}

var femaleMiddle = []weighted{
	{"Thị", 70}, {"Thu", 6}, {"Ngọc", 5}, {"Thanh", 5}, {"Minh", 4},
	{"Hồng", 4}, {"Kim", 3}, {"Bích", 3},
}

var femaleGiven = []string{
	"Lan", "Hoa", "Hương", "Hằng", "Thủy", "Nga", "Hạnh", "Loan", "Mai", "Nhung",
	"Phương", "Thảo", "Trang", "Huyền", "Yến", "Dung", "Liên", "Oanh", "Tuyết", "Hiền",
	"Thoa", "Xuân", "Hà", "Vân", "Chinh", "Quyên", "Hường", "Lý", "Ngân", "Ánh",
	"Duyên", "Thắm", "Nguyệt", "Sen", "Tâm", "Lệ", "Thơm", "Ninh",
}

var maleMiddle = []weighted{
	{"Văn", 60}, {"Đức", 10}, {"Minh", 8}, {"Quang", 6}, {"Hữu", 6},
	{"Xuân", 5}, {"Công", 5}, {"Mạnh", 3},
}

var maleGiven = []string{
	"Tuấn", "Hùng", "Dũng", "Minh", "Hải", "Long", "Nam", "Sơn", "Thắng", "Cường",
	"Bình", "Quang", "Hưng", "Toàn", "Thành", "Trung", "Kiên", "Tùng", "Huy", "Đức",
	"Hiếu", "Phong", "Lâm", "Khánh", "Chiến", "Thịnh", "Vinh", "Tiến", "Việt", "Quý",
}

// How buyers address the stall keeper, which is how stalls are known.
var (
	femaleHonorifics = []weighted{{"cô", 45}, {"chị", 35}, {"bà", 20}}
	maleHonorifics   = []weighted{{"anh", 45}, {"chú", 35}, {"bác", 20}}
)

// carrier is a mobile network. The prefixes are the carriers' real mobile
// ranges so phone numbers pass format checks, and the carrier also decides
// which Mobile Money service the merchant can have: a Mobile Money wallet
// belongs to the SIM of the carrier that issues it.
type carrier struct {
	weight   int
	prefixes []string
	money    string  // Mobile Money channel of this carrier, "" if none
	moneyPct float64 // share of its subscribers whose stall accepts it
}

var carriers = []carrier{
	{55, []string{"032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098"}, "VIETTEL_MONEY", 0.45},
	{25, []string{"081", "082", "083", "084", "085", "088", "091", "094"}, "VNPT_MONEY", 0.35},
	{15, []string{"070", "076", "077", "078", "079", "089", "090", "093"}, "MOBIFONE_MONEY", 0.35},
	{4, []string{"052", "056", "058", "092"}, "", 0},
	{1, []string{"059", "099"}, "", 0},
}

// bank is a NAPAS member the merchant is paid into. The BINs are real so
// VietQR payloads built from the data set are well formed; the account
// numbers are not, and only imitate each bank's usual length.
type bank struct {
	bin    string
	weight int
	prefix string
	length int
}

// collectionBIN is Vietcombank's, where every market collects its VietQR
// transfers.
const collectionBIN = "970436"

var banks = []bank{
	{"970405", 25, "85", 13}, // Agribank: the bank of rural markets
	{"970415", 18, "10", 12}, // VietinBank
	{"970418", 15, "39", 14}, // BIDV
	{"970436", 14, "10", 10}, // Vietcombank
	{"970422", 12, "0", 13},  // MB
	{"970407", 7, "190", 14}, // Techcombank
	{"970432", 5, "", 9},     // VPBank
	{"970416", 4, "", 8},     // ACB
}

// Channel names, in the canonical order Merchant.Channels keeps.
const (
	chanVietQR   = "VIETQR"
	chanViettel  = "VIETTEL_MONEY"
	chanVNPT     = "VNPT_MONEY"
	chanMobifone = "MOBIFONE_MONEY"
	chanMoMo     = "MOMO"
	chanZaloPay  = "ZALOPAY"
)

// Vietnamese letters and the ASCII letter a bank prints for each. Only lower
// case is listed; callers lower-case first.
var foldGroups = []struct {
	to   rune
	from string
}{
	{'a', "àáảãạăằắẳẵặâầấẩẫậ"},
	{'e', "èéẻẽẹêềếểễệ"},
	{'i', "ìíỉĩị"},
	{'o', "òóỏõọôồốổỗộơờớởỡợ"},
	{'u', "ùúủũụưừứửữự"},
	{'y', "ỳýỷỹỵ"},
	{'d', "đ"},
}
